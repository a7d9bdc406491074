"""The 87-book library: its catalogue, one splitter per kind of book, parts, dedupe across series, the books table.

Small excerpts of the real files (a Lang fairy book, an Uncle Wiggily bedtime book, Alice) are cut from the
library mirror in the test, with the line ends and byte-order mark the files have, and go through the real
download and prepare stages. Skipped when the mirror is not beside the repository.
"""

import json
import os
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from aitale.data.books import CATALOGUE, KINDS, book_id_of, load_books, retold, split_book
from aitale.data.contributions import SPLIT_NAMES
from aitale.data.dedupe import deduplicate
from aitale.data.parts import cut_into_parts
from aitale.data.text import paragraphs, word_count
from aitale.errors import SourceError
from aitale.io import read_jsonl
from aitale.labels import SAFETY_CATEGORIES, STYLES
from aitale.params import PrepareParams, load_section
from tests.support.params import set_param
from tests.support.repo import REPO, manifest
from tests.support.stages import run_stage

LIBRARY = Path(os.environ.get("AITALE_LIBRARY", REPO.parent / "shared" / "corpus" / "library"))
pytestmark = pytest.mark.skipif(
    not (LIBRARY / "MANIFEST.tsv").exists(),
    reason=f"the library mirror is not at {LIBRARY} (../shared/corpus/library beside the repository)",
)

COLLECTION, STORY_BOOK, NOVEL = 3282, 15281, 11  # The Brown Fairy Book, Uncle Wiggily's Adventures, Alice
# Each excerpt ends just before this heading line of the body: three tales, stories and chapters.
CUT_BEFORE = {COLLECTION: "The Bunyip", STORY_BOOK: "STORY IV", NOVEL: "CHAPTER IV. The Rabbit Sends in a Little Bill"}
TITLES = {
    COLLECTION: [
        "What the Rose Did to the Cypress",
        "Ball-Carrier and the Bad One",
        "How Ball-Carrier Finished His Task",
    ],
    STORY_BOOK: ["Uncle Wiggily Starts Off", "Uncle Wiggily Goes Fishing", "Uncle Wiggily and the Black Crow"],
    NOVEL: ["Down the Rabbit-Hole", "The Pool of Tears", "A Caucus-Race and a Long Tale"],
}
OPENINGS = {
    COLLECTION: "Once upon a time a great king of the East",
    STORY_BOOK: "Uncle Wiggily Longears, the nice old gentleman rabbit",
    NOVEL: "Alice was beginning to get very tired",
}
FRONT_MATTER = ("Gutenberg", "CONTENTS", "Contents", "Illustration", "STORY", "CHAPTER", "BED TIME", "PUBLISHERS")


def excerpt(book: int) -> bytes:
    """The real file up to the line before CUT_BEFORE[book] (its last such line: the contents names it too), then
    the file's own end marker and licence: a small book of the same shape, line ends and BOM as the original."""
    raw = (LIBRARY / f"pg{book}.txt").read_bytes()
    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    cut = raw.rindex(newline + CUT_BEFORE[book].encode() + newline)
    end = raw.index(b"*** END OF")
    return raw[: cut + len(newline)] + newline * 3 + raw[end:]


def title_of(book: int) -> str:
    return manifest(LIBRARY)[book]["title"]


@pytest.fixture(scope="module")
def excerpt_books(tmp_path_factory) -> Path:
    """The three excerpts downloaded by the download stage from a mirror folder holding them."""
    root = tmp_path_factory.mktemp("library")
    (root / "mirror").mkdir()
    for book in CUT_BEFORE:
        (root / "mirror" / f"pg{book}.txt").write_bytes(excerpt(book))
    books = f"[{', '.join(map(str, CUT_BEFORE))}]"
    result = run_stage(
        "download",
        "--output-dir",
        str(root / "raw"),
        "--gutenberg.books",
        books,
        "--gutenberg.mirror",
        str(root / "mirror"),
    )
    assert result.returncode == 0, result.stderr
    return root


def test_the_catalogue_declares_every_book_of_the_library_once():
    assert sorted(CATALOGUE) == sorted(manifest(LIBRARY))
    for book in CATALOGUE.values():
        assert book.kind in KINDS and book.style in STYLES and book.group, book


def test_a_book_missing_from_the_catalogue_is_refused_before_any_work(excerpt_books, tmp_path):
    entries = json.loads((excerpt_books / "raw" / "manifest.json").read_text())["books"]
    (tmp_path / "manifest.json").write_text(json.dumps({"books": [*entries, {**entries[0], "id": 999999}]}))
    with pytest.raises(SourceError, match=r"book 999999 is not in the catalogue \(aitale/data/books.py\)"):
        load_books(tmp_path)  # no book file is read: the folder holds none


@pytest.mark.parametrize("book", [COLLECTION, STORY_BOOK, NOVEL], ids=["collection", "bedtime-book", "novel"])
def test_each_kind_of_book_gives_its_records_titled_as_in_the_book(book):
    records = split_book(excerpt(book), CATALOGUE[book], title_of(book))
    assert [r.title for r in records] == TITLES[book]
    assert records[0].text.startswith(OPENINGS[book])
    for record in records:
        assert word_count(record.text) >= 300, record.title
        assert not any(word in record.text for word in FRONT_MATTER), record.title


def test_a_bedtime_books_stories_stand_alone_and_a_novels_chapters_stay_together(excerpt_books):
    stories = load_books(excerpt_books / "raw")
    by_book = {book: [s for s in stories if book_id_of(s.id) == book] for book in CUT_BEFORE}
    assert [s.title for s in by_book[STORY_BOOK]] == TITLES[STORY_BOOK]
    assert len({s.tale for s in by_book[STORY_BOOK]}) == 3  # three stories: each may land in its own split
    assert {s.tale for s in by_book[NOVEL]} == {f"pg{NOVEL}"}  # one story in chapters: one split
    assert {s.style for s in by_book[STORY_BOOK]} == {"bedtime"}
    assert {s.style for s in by_book[COLLECTION]} == {"fairy_tale"}
    assert all(s.themes == [] and s.themes_source == "none" for s in stories)  # for a judge to fill in


@pytest.mark.parametrize("book", [1597, STORY_BOOK, 28])  # CRLF with a BOM, CRLF without, LF with a BOM
def test_crlf_and_bom_give_the_same_records_as_lf(book):
    raw = (LIBRARY / f"pg{book}.txt").read_bytes()
    plain = raw.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    windows = b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n")
    records = [split_book(data, CATALOGUE[book], title_of(book)) for data in (raw, plain, windows)]
    assert len(records[0]) > 10
    assert records[0] == records[1] == records[2]


def test_a_long_record_is_cut_at_paragraph_breaks_into_numbered_parts(excerpt_books):
    tale = next(s for s in load_books(excerpt_books / "raw") if s.title == TITLES[COLLECTION][0])
    parts = cut_into_parts(tale, 800)
    assert word_count(tale.text) > 1600 and len(parts) >= 3
    assert [p.title for p in parts] == [f"{tale.title} (part {n})" for n in range(1, len(parts) + 1)]
    assert "\n\n".join(p.text for p in parts) == tale.text  # nothing lost, nothing cut inside a paragraph
    starts = set(paragraphs(tale.text))
    assert all(paragraphs(p.text)[0] in starts and word_count(p.text) <= 800 for p in parts)
    assert {p.tale for p in parts} == {tale.tale} and len({p.id for p in parts}) == len(parts)
    assert cut_into_parts(tale, word_count(tale.text)) == [tale]


def test_a_series_shares_names_not_tales_while_retellings_are_dropped(tmp_path):
    """Two Burgess stories about the same animals look alike to TF-IDF; two Grimm translations are one tale."""
    result = run_stage(
        "download", "--output-dir", str(tmp_path), "--gutenberg.books", "[2557, 5110, 2591, 5314]",
        "--gutenberg.mirror", str(LIBRARY),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    wanted = {"Billy Mink's Swimming Party", "Five Heads Together", "Hans in Luck"}
    stories = [s for s in load_books(tmp_path) if s.title in wanted]
    mink, heads = "pg2557/billy-mink-s-swimming-party", "pg5110/five-heads-together"
    assert [s.id for s in stories] == [mink, heads, "pg2591/hans-in-luck", "pg5314/hans-in-luck"]
    params = load_section(PrepareParams, "prepare", REPO / "params.yaml").dedupe
    for compared in (None, retold):  # None: every story compared, as for the ten fairy-tale books alone
        kept, dropped = deduplicate([replace(s) for s in stories], params, *([compared] if compared else []))
        assert [(d.story.id, d.duplicate_of) for d in dropped] == [("pg5314/hans-in-luck", "pg2591/hans-in-luck")]
        tales = {s.id: s.tale for s in kept}
        # names alone hold the two series stories together unless only retold tales are compared
        assert (tales[mink] == tales[heads]) is (compared is None)


def run_prepare(root: Path, raw: Path, screen: Path, out: str, hash_seed: str) -> Path:
    config = root / "params.yaml"
    config.write_text((REPO / "params.yaml").read_text())
    set_param(config, "prepare.split.holdout_books", [NOVEL])
    set_param(config, "prepare.part_words", 600)
    set_param(config, "prepare.augment.methods", [])
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    folder = root / out
    command = ["--stories", str(REPO / "data/stories"), "--books", str(raw), "--screen", str(screen)]
    command += ["--output-dir", str(folder / "processed"), "--metrics", str(folder / "data.json")]
    command += ["--books-table", str(folder / "books.json"), "--groups", str(folder / "groups.json")]
    result = run_stage("prepare", *command, config=config, env=env)
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def prepared(excerpt_books, screen_dir) -> Path:
    return run_prepare(excerpt_books, excerpt_books / "raw", screen_dir, "run1", hash_seed="1")


def test_the_books_table_accounts_for_every_part_of_every_book(prepared):
    rows = json.loads((prepared / "books.json").read_text())
    assert [row["id"] for row in rows] == [COLLECTION, STORY_BOOK, NOVEL]  # catalogue order
    assert [row["group"] for row in rows] == ["lang", "garis", "novels"]
    for row in rows:
        assert row["records"] == len(TITLES[row["id"]])
        assert row["parts"] > row["records"]  # every record here is longer than 600 words
        removals = ("unsafe", "duplicate", "holdout_tale", "too_short", "too_long")
        assert row["parts"] == sum(row[r] for r in removals) + sum(row[split] for split in SPLIT_NAMES)
        assert row["words"] == row["words_kept"] + sum(row[f"{r}_words"] for r in removals)
        assert sum(row[f"unsafe_{c}"] for c in SAFETY_CATEGORIES) >= row["unsafe"]  # each names its categories
    novel = rows[2]
    assert novel["holdout"] == novel["parts"] - novel["unsafe"] and novel["train"] == 0  # held out whole
    held = [s for s in read_jsonl(prepared / "processed" / "holdout.jsonl") if book_id_of(s["id"])]
    assert {book_id_of(s["id"]) for s in held} == {NOVEL} and len(held) == novel["holdout"]
    assert all(s["title"].startswith(tuple(TITLES[NOVEL])) and "(part " in s["title"] for s in held)
    groups = json.loads((prepared / "groups.json").read_text())
    assert groups["novels"]["parts"] == novel["parts"] and groups["lang"]["books"] == 1


def test_prepare_is_the_same_bytes_under_another_hash_seed(prepared, excerpt_books, screen_dir):
    again = run_prepare(excerpt_books, excerpt_books / "raw", screen_dir, "run2", hash_seed="2")
    files = sorted(p.relative_to(prepared) for p in prepared.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (prepared / name).read_bytes() == (again / name).read_bytes(), name


def test_the_library_recipe_pins_every_book_of_the_mirror():
    """`make library` downloads exactly the catalogue's books, each pinned to the mirror's sha256."""
    made = subprocess.run(["make", "-s", "-n", "library-data", f"LIBRARY_MIRROR={LIBRARY}"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    words = shlex.split(next(line for line in made.splitlines() if line.startswith("dvc exp run")))
    values = dict(words[k + 1].split("=", 1) for k, word in enumerate(words) if word == "-S")
    pins = yaml.safe_load(values["++data.gutenberg.sha256"])
    rows = manifest(LIBRARY)
    assert yaml.safe_load(values["data.gutenberg.books"]) == list(rows)  # the mirror's order
    assert pins == {book: row["sha256"] for book, row in rows.items()}
    held = yaml.safe_load(values["prepare.split.holdout_books"])
    assert len({CATALOGUE[book].group for book in held}) == len(held) >= 2  # from different groups
