"""The hand-labelled passages the screen is fitted and measured on (data/safety/passages.jsonl; data card beside it).

A passage is checked against the data card's rules (:func:`problems`): its kind fixes its age
(``plain``, ``false_friend``, ``classic``: "3-5"; ``mild``: "6-8" or "9-12"; the rest: none), its
split is the hash of its id, and a passage taken from a book appears word for word from its
``source`` line (``pg<id>:<line>`` in the reference ten, ``library:pg<id>:<line>`` in the library), and
one taken from the project's own stories appears word for word in ``data/stories/<slug>.md`` (``stories:<slug>``).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from aitale.errors import SourceError
from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES

SAFE_KINDS = ("plain", "false_friend", "classic")
KIND_AGES = {
    **dict.fromkeys(SAFE_KINDS, ("3-5",)),
    "mild": ("6-8", "9-12"),
    **dict.fromkeys(("explicit", "implicit", "graphic_in_context"), (None,)),
}
UNTOUCHED = "s0567"  # the last id of the first labelled set, whose test part is reported on its own
BOOKS = {"": "gutenberg", "library:": "library"}  # source prefix -> folder of ../shared/corpus
_SOURCE = re.compile(r"^(library:)?pg(\d+):(\d+)$")
_STORY = re.compile(r"^stories:([a-z0-9-]+)$")
STORIES = Path(__file__).resolve().parents[2] / "data" / "stories"


class Passage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str
    source: str
    categories: list[Literal[SAFETY_CATEGORIES]]  # type: ignore[valid-type]
    youngest: Literal[AGE_GROUPS] | None  # type: ignore[valid-type]  # None: for no child
    kind: str
    note: str
    split: Literal["train", "test"]

    def unsafe_for(self, age_group: str) -> bool:
        return self.youngest is None or AGE_GROUPS.index(self.youngest) > AGE_GROUPS.index(age_group)

    @property
    def untouched(self) -> bool:
        """One of the first labelled set (s0001-s0567), whose test part is reported on its own."""
        return self.id <= UNTOUCHED

    def line(self) -> str:
        """The passage as a line of passages.jsonl (keys in the card's order)."""
        return json.dumps(self.model_dump(), ensure_ascii=False)


def split_of(passage_id: str) -> str:
    """``test`` for about 40% of ids, by the hash of the id alone (independent of the labels)."""
    return "test" if int(hashlib.sha256(passage_id.encode("utf-8")).hexdigest(), 16) % 5 < 2 else "train"


def load_passages(path: str | Path) -> list[Passage]:
    found = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        try:
            found.append(Passage.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as err:
            raise SourceError(f"{path}:{number}: not a labelled passage ({err})") from None
    return found


def problems(passage: Passage, corpus: Path) -> list[str]:
    """What breaks the card's rules in one passage (empty when nothing does); ``corpus`` holds the books' folders."""
    found = []
    if passage.kind not in KIND_AGES:
        found.append(f"kind {passage.kind!r} is not one of {', '.join(KIND_AGES)}")
    elif passage.youngest not in KIND_AGES[passage.kind]:
        found.append(f"kind {passage.kind} needs youngest in {KIND_AGES[passage.kind]}, not {passage.youngest!r}")
    if passage.kind in ("plain", "false_friend") and passage.categories:
        found.append(f"a {passage.kind} passage lists no category")
    if len(set(passage.categories)) != len(passage.categories):
        found.append("a category is listed twice")
    if passage.split != split_of(passage.id):
        found.append(f"split {passage.split}, but the hash of the id says {split_of(passage.id)}")
    if not re.fullmatch(r"s\d{4}", passage.id):
        found.append("an id is s and four digits")
    if passage.source != "written":
        found += _source_problems(passage, corpus)
    return found


def _source_problems(passage: Passage, corpus: Path) -> list[str]:
    if story := _STORY.match(passage.source):
        return _story_problems(passage, STORIES / f"{story.group(1)}.md")
    match = _SOURCE.match(passage.source)
    if not match:
        return [f"source {passage.source!r} is neither 'written', [library:]pg<id>:<line> nor stories:<slug>"]
    prefix, book, number = match.group(1) or "", match.group(2), int(match.group(3))
    path = corpus / BOOKS[prefix] / f"pg{book}.txt"
    if not path.exists():
        return [f"source {passage.source}: no book {path}"]
    lines = _book_lines(path)
    if not 1 <= number <= len(lines):
        return [f"source {passage.source}: the book has {len(lines)} lines"]
    # letters and digits only: quotes were straightened and lines unwrapped, but no word may change
    start = number - 1
    first = next((i for i in range(start, len(lines)) if lines[i].strip()), start)
    region = _letters(" ".join(lines[start : start + 400]))
    at = region.find(_letters(passage.text))
    if at < 0 or at >= len(_letters(" ".join(lines[start : first + 1]))):
        return [f"source {passage.source}: the text does not start on that line word for word"]
    return []


def _story_problems(passage: Passage, path: Path) -> list[str]:
    if not path.exists():
        return [f"source {passage.source}: no story {path}"]
    if _letters(passage.text) not in _story_letters(path):
        return [f"source {passage.source}: the text is not in the story word for word"]
    return []


@lru_cache(maxsize=8)  # a story's passages come one after another: read and reduce it once for all of them
def _story_letters(path: Path) -> str:
    return _letters(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=8)
def _book_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig").splitlines()


def _letters(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())
