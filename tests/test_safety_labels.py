"""The labelled passages: merged checked and sorted, a label never changed, the data card's counts regenerated."""

import json
import subprocess
import sys

import pytest

from aitale.safety.card import BEGIN, END
from aitale.safety.labelled import load_passages, problems, split_of
from tests.support.repo import REPO

PASSAGES = REPO / "data/safety/passages.jsonl"
CORPUS = REPO.parent / "shared" / "corpus"


def merge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aitale.safety.merge", *args], cwd=REPO, capture_output=True, text=True
    )


def row(**changes) -> dict:
    text = "The kitten chased a leaf across the warm garden path."
    base = {"id": "s9001", "text": text, "source": "written", "categories": [], "youngest": "3-5",
            "kind": "plain", "note": "safe", "split": split_of("s9001")}  # fmt: skip
    return {**base, **changes}


@pytest.fixture
def copy(tmp_path):
    target, card = tmp_path / "passages.jsonl", tmp_path / "README.md"
    lines = PASSAGES.read_text().splitlines()
    target.write_text("\n".join(lines[:40]) + "\n")
    card.write_text(f"# card\n\nhand-written\n\n{BEGIN}\nold\n{END}\n\n## after\n")
    return target, card


def test_every_labelled_passage_keeps_the_cards_rules():
    passages = load_passages(PASSAGES)
    assert [p.id for p in passages] == sorted(p.id for p in passages)
    assert len({p.id for p in passages}) == len(passages) >= 2000
    bad = {p.id: found for p in passages if p.id > "s0567" and (found := problems(p, CORPUS))}
    assert bad == {}
    assert sum(p.untouched and p.split == "test" for p in passages) == 234  # the untouched test part


def test_a_merge_adds_sorted_is_idempotent_and_redoes_the_counts(copy, tmp_path):
    target, card = copy
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps(row()) + "\n" + json.dumps(row(id="s0999", split=split_of("s0999"), text="A hen.")))
    first = merge(str(target), str(new), "--card", str(card))
    assert first.returncode == 0, first.stderr
    ids = [p.id for p in load_passages(target)]
    assert ids == sorted(ids) and {"s0999", "s9001"} <= set(ids) and len(ids) == 42
    once = target.read_bytes()
    again = merge(str(target), str(new), "--card", str(card))
    assert again.returncode == 0 and target.read_bytes() == once and "(0 new)" in again.stdout
    text = card.read_text()
    assert text.startswith("# card\n\nhand-written\n") and text.endswith(f"{END}\n\n## after\n") and "old" not in text
    assert "| **all passages** | " in text and " 42 |" in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": "s0001", "youngest": "3-5"}, "s0001: already in the set with other text or labels"),
        ({"kind": "mild"}, "kind mild needs youngest in ('6-8', '9-12'), not '3-5'"),
        ({"split": "train" if split_of("s9001") == "test" else "test"}, "but the hash of the id says"),
        ({"source": "library:pg1597:65"}, "the text does not start on that line word for word"),
        ({"source": "pg1597:x"}, "is neither 'written', [library:]pg<id>:<line> nor stories:<slug>"),
        ({"source": "stories:a-lullaby-for-puff"}, "the text is not in the story word for word"),
        ({"source": "stories:no-such-tale"}, "no story"),
        ({"categories": ["violence"]}, "a plain passage lists no category"),
    ],
)
def test_a_bad_passage_is_named_and_nothing_is_written(copy, tmp_path, changes, message):
    target, card = copy
    before, card_before = target.read_bytes(), card.read_bytes()
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps(row(**changes)) + "\n")
    result = merge(str(target), str(new), "--card", str(card))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert target.read_bytes() == before and card.read_bytes() == card_before


def test_a_library_passage_is_checked_against_its_line(copy, tmp_path):
    target, _ = copy
    first = json.loads(
        next(line for line in PASSAGES.read_text().splitlines() if '"source": "library:pg1597:65"' in line)
    )
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({**first, "id": "s9002", "split": split_of("s9002"), "text": first["text"]}) + "\n")
    assert "the same text as" in merge(str(target), str(new), str(PASSAGES)).stderr
    moved = {**first, "id": "s9002", "split": split_of("s9002"), "source": "library:pg1597:64"}
    new.write_text(json.dumps(moved) + "\n")
    assert merge(str(target), str(new)).returncode == 0  # line 64 is blank: the passage starts on the next


def test_a_passage_from_the_projects_stories_is_found_in_its_story(copy, tmp_path):
    target, _ = copy
    text = "But one night, Saffra had a cold."  # data/stories/a-lullaby-for-puff.md, word for word
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps(row(text=text, source="stories:a-lullaby-for-puff")) + "\n")
    assert merge(str(target), str(new)).returncode == 0
    new.write_text(json.dumps(row(text=text.replace("cold", "cough"), source="stories:a-lullaby-for-puff")) + "\n")
    assert "the text is not in the story word for word" in merge(str(target), str(new)).stderr
