"""Story records from the downloaded Gutenberg books (the ``download`` stage's folder)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aitale.data.gutenberg import parse_book
from aitale.data.readability import reading_grade
from aitale.data.records import Story, slugify
from aitale.errors import SourceError

log = logging.getLogger(__name__)

# Flesch-Kincaid grade -> the youngest age group that reads at that level. The old
# translations carry no age labels, so reading difficulty is the honest stand-in.
GRADE_TO_AGE = ((3.0, "3-5"), (6.0, "6-8"))


def load_books(folder: str | Path) -> list[Story]:
    """One record per story of each book listed in ``manifest.json``, in manifest order."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["books"]
    except (OSError, ValueError, KeyError) as err:
        raise SourceError(f"{folder}: no readable manifest.json ({err}); run the download stage first") from None
    stories = []
    for book in manifest:
        book_id, title = book["id"], book["title"]
        path = folder / f"pg{book_id}.txt"
        if not path.exists():
            raise SourceError(f"book {book_id}: {path} is missing; rerun the download stage")
        tales = parse_book(path.read_bytes(), book_id)
        log.info("book %d (%s): %d stories", book_id, title, len(tales))
        collection = slugify(title)
        style = "fable" if "fable" in title.lower() else "fairy_tale"
        for tale in tales:
            slug = slugify(tale.title)
            stories.append(
                Story(
                    id=f"pg{book_id}/{slug}",
                    title=tale.title,
                    text=tale.text,
                    source="gutenberg",
                    collection=collection,
                    age_group=age_group_for(tale.text),
                    themes=[],
                    style=style,
                    tale=f"pg{book_id}/{slug}",
                )
            )
    return _unique_ids(stories)


def age_group_for(text: str) -> str:
    grade = reading_grade(text)
    return next((age for limit, age in GRADE_TO_AGE if grade < limit), "9-12")


def _unique_ids(stories: list[Story]) -> list[Story]:
    """Books repeat titles ("The Fox and the Crow" twice in one Aesop): number the repeats."""
    seen: dict[str, int] = {}
    for story in stories:
        count = seen.get(story.id, 0)
        seen[story.id] = count + 1
        if count:
            story.id = story.tale = f"{story.id}-{count + 1}"
    return stories
