"""The download stage fetches books from a mirror, checks them, and never writes a partial folder."""

import json

import pytest

from tests.support.repo import manifest
from tests.support.stages import run_stage

GRIMM, AESOP = 2591, 28


def download(out, books, mirror, pins=None):
    return run_stage(
        "download",
        "--output-dir",
        str(out),
        "--gutenberg.books",
        json.dumps(books),
        "--gutenberg.mirror",
        str(mirror),
        "--gutenberg.sha256",
        yaml_map(pins or {}),
    )


def yaml_map(pins):
    """``{28: "ab..."}`` as YAML: integer keys, as params.yaml writes them (JSON keys are strings)."""
    return "{" + ", ".join(f'{book}: "{digest}"' for book, digest in pins.items()) + "}"


def test_downloads_from_a_local_mirror_with_pinned_hashes(tmp_path, corpus_dir):
    pins = {book: manifest(corpus_dir)[book]["sha256"] for book in (GRIMM, AESOP)}
    result = download(tmp_path / "raw", [GRIMM, AESOP], corpus_dir, pins)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "raw/manifest.json").read_text())["books"]
    assert [b["id"] for b in written] == [GRIMM, AESOP]
    assert written[0]["title"] == manifest(corpus_dir)[GRIMM]["title"]
    assert [b["sha256"] for b in written] == [pins[GRIMM], pins[AESOP]]
    assert (tmp_path / f"raw/pg{GRIMM}.txt").read_bytes() == (corpus_dir / f"pg{GRIMM}.txt").read_bytes()


def test_url_template_mirror(tmp_path, corpus_dir):
    result = download(tmp_path / "raw", [AESOP], f"file://{corpus_dir}/pg{{id}}.txt")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"raw/pg{AESOP}.txt").exists()


def test_empty_book_list_writes_an_empty_manifest(tmp_path):
    result = download(tmp_path / "raw", [], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "raw/manifest.json").read_text()) == {"books": []}


def test_sha256_mismatch_fails_without_output(tmp_path, corpus_dir):
    result = download(tmp_path / "raw", [AESOP], corpus_dir, {AESOP: "0" * 64})
    assert result.returncode == 2
    assert f"book {AESOP}: sha256 mismatch" in result.stderr
    assert not (tmp_path / "raw").exists()


def test_unreachable_book_names_the_book_and_the_fix(tmp_path, corpus_dir):
    result = download(tmp_path / "raw", [AESOP, 999999], corpus_dir)
    assert result.returncode == 2
    assert "book 999999: cannot fetch" in result.stderr
    assert "data.gutenberg.mirror" in result.stderr and "drop 999999 from data.gutenberg.books" in result.stderr
    assert not (tmp_path / "raw").exists()


def test_failed_download_keeps_the_previous_output(tmp_path, corpus_dir):
    assert download(tmp_path / "raw", [AESOP], corpus_dir).returncode == 0
    assert download(tmp_path / "raw", [999999], corpus_dir).returncode == 2
    assert json.loads((tmp_path / "raw/manifest.json").read_text())["books"][0]["id"] == AESOP


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbfThe Project Gutenberg eBook\n\xff\xfe broken bytes\n", "UTF-8"),
        (b"<!DOCTYPE html>\n<html><head><title>Not found</title></head><body>404</body></html>\n", "HTML"),
    ],
    ids=["empty", "not-utf8", "html"],
)
def test_corrupt_sources_fail_with_a_clear_error(tmp_path, content, message):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "pg7.txt").write_bytes(content)
    result = download(tmp_path / "raw", [7], mirror)
    assert result.returncode == 2
    assert "book 7" in result.stderr and message in result.stderr
    assert not (tmp_path / "raw").exists()


def test_truncated_book_without_end_marker_is_rejected(tmp_path, corpus_dir):
    text = (corpus_dir / f"pg{AESOP}.txt").read_bytes()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / f"pg{AESOP}.txt").write_bytes(text[: text.index(b"*** END OF")])
    result = download(tmp_path / "raw", [AESOP], mirror)
    assert result.returncode == 2
    assert f"book {AESOP}" in result.stderr and "end marker" in result.stderr.lower()
    assert not (tmp_path / "raw").exists()
