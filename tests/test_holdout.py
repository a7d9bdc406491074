"""The out-of-collection hold-out: held-out books and custom tales go to holdout.jsonl and to no split."""

import subprocess
import sys
from pathlib import Path

import pytest

from aitale.io import read_jsonl
from tests.support.params import set_param
from tests.support.repo import REPO, manifest
from tests.support.stages import run_stage

SPLITS = ("train", "val", "test")
BOOKS = [17208, 29021]  # two Perrault translations: many of their tales are told in both


def prepare(root: Path, config: Path, raw: Path, screen: Path, name: str = "processed") -> dict[str, list[dict]]:
    out = root / name
    result = run_stage(
        "prepare",
        "--stories",
        str(REPO / "data/stories"),
        "--books",
        str(raw),
        "--screen",
        str(screen),
        "--output-dir",
        str(out),
        "--metrics",
        str(root / f"{name}.json"),
        "--books-table",
        str(root / f"{name}_books.json"),
        "--groups",
        str(root / f"{name}_groups.json"),
        config=config,
    )
    assert result.returncode == 0, result.stderr
    return {split: read_jsonl(out / f"{split}.jsonl") for split in (*SPLITS, "holdout", "removed")}


def params(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    for dotted, value in changes.items():
        set_param(path, dotted, value)
    return path


@pytest.fixture(scope="module")
def custom(tmp_path_factory, screen_dir):
    """The embedded default: custom stories only, twice with the same seed and once with another."""
    root = tmp_path_factory.mktemp("holdout-custom")
    config = params(root)
    assert run_stage("download", "--output-dir", str(root / "raw"), config=config).returncode == 0
    runs = [prepare(root, config, root / "raw", screen_dir, name) for name in ("a", "b")]
    other = prepare(root, params(root, **{"prepare.seed": 7}), root / "raw", screen_dir, "seed7")
    return runs, other


def test_a_share_of_the_custom_stories_is_held_out_of_every_split(custom):
    (run, _), _ = custom
    held = {r["id"] for r in run["holdout"]}
    in_splits = {r["id"] for split in SPLITS for r in run[split] if not r["augmented"]}
    assert held and not held & in_splits
    assert {r["tale"] for r in run["holdout"]}.isdisjoint(r["tale"] for split in SPLITS for r in run[split])
    assert 0.1 <= len(held) / (len(held) + len(in_splits)) < 0.2  # holdout_custom: 0.1, whole tales
    assert all(r["source"] == "custom" and not r["augmented"] and r["structured"] for r in run["holdout"])


def test_the_custom_hold_out_is_fixed_by_the_seed(custom):
    (first, again), other = custom
    ids = lambda run: [r["id"] for r in run["holdout"]]  # noqa: E731
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)


def test_a_held_out_book_reaches_no_split_nor_any_telling_of_its_tales(tmp_path, corpus_dir, screen_dir):
    pins = {book: row["sha256"] for book, row in manifest(corpus_dir).items() if book in BOOKS}
    changes = {"data.gutenberg.books": BOOKS, "data.gutenberg.mirror": str(corpus_dir), "data.gutenberg.sha256": pins}
    config = params(tmp_path, **changes, **{"prepare.split.holdout_books": [17208], "prepare.split.holdout_custom": 0})
    assert run_stage("download", "--output-dir", str(tmp_path / "raw"), config=config).returncode == 0
    run = prepare(tmp_path, config, tmp_path / "raw", screen_dir)

    held = run["holdout"]
    assert held and all(r["id"].startswith("pg17208/") for r in held)
    in_splits = [r for split in SPLITS for r in run[split]]
    assert not any(r["id"].startswith("pg17208/") for r in in_splits)
    assert any(r["id"].startswith("pg29021/") for r in in_splits)  # the other book still trains
    assert {r["tale"] for r in held}.isdisjoint(r["tale"] for r in in_splits)
    for removal in (r for r in run["removed"] if r["reason"] == "holdout_tale"):
        assert removal["id"].startswith("pg29021/") and "pg17208/" in removal["detail"]


def test_a_held_out_book_that_is_never_downloaded_is_refused(tmp_path):
    config = params(tmp_path, **{"prepare.split.holdout_books": [7128]})
    result = subprocess.run(
        [sys.executable, "-m", "stages.check", "--config", str(config), "--output", str(tmp_path / "ok.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "prepare.split.holdout_books: [7128] not in data.gutenberg.books" in result.stderr
