"""What each book contributes to the prepared data: one row per book, and the same sums per group.

A row counts the book's records as loaded (tales, stories or chapters) and their words, the parts they
were cut into, what each filter took (too short or long, the content screen by category, dedupe, other
tellings of a held-out tale) and what each split kept (original records, not augmented copies). Rows
follow the catalogue's order; every count is a plain int, so the table is the same bytes for the same data.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from aitale.data.books import CATALOGUE, book_id_of
from aitale.data.records import Story
from aitale.data.text import word_count
from aitale.labels import SAFETY_CATEGORIES

SPLIT_NAMES = ("train", "val", "test", "holdout")
REMOVALS = ("too_short", "too_long", "unsafe", "duplicate", "holdout_tale")


def book_rows(
    loaded: list[Story], parts: list[Story], removed: list[dict], splits: dict[str, list[Story]]
) -> list[dict]:
    """One row per book that gave records, in catalogue order."""
    words = {story.id: word_count(story.text) for story in parts}
    words.update({story.id: word_count(story.text) for story in loaded})
    rows: dict[int, dict] = {}
    for story in loaded:
        book = book_id_of(story.id)
        if book is None:
            continue
        row = rows.setdefault(book, _empty_row(book))
        row["records"] += 1
        row["words"] += words[story.id]
    for story in parts:
        if (book := book_id_of(story.id)) in rows:
            rows[book]["parts"] += 1
    for removal in removed:
        if (book := book_id_of(removal["id"])) in rows:
            row = rows[book]
            row[removal["reason"]] += 1
            row[f"{removal['reason']}_words"] += words.get(removal["id"], 0)
            for category in removal.get("categories", []):
                row[f"unsafe_{category}"] += 1
    for name in SPLIT_NAMES:
        for story in splits.get(name, []):
            if not story.augmented and (book := book_id_of(story.id)) in rows:
                rows[book][name] += 1
                rows[book][f"words_{name}"] += story.words
    for row in rows.values():
        row["words_kept"] = sum(row[f"words_{name}"] for name in SPLIT_NAMES)
    order = {book: k for k, book in enumerate(CATALOGUE)}
    return [rows[book] for book in sorted(rows, key=lambda book: order.get(book, len(order)))]


def group_sums(rows: list[dict]) -> dict[str, dict[str, int]]:
    """The rows' counts summed per group, groups in catalogue order."""
    sums: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        sums[row["group"]].update({k: v for k, v in row.items() if isinstance(v, int) and k != "id"})
        sums[row["group"]]["books"] += 1
    return {group: dict(counts) for group, counts in sums.items()}


def _empty_row(book: int) -> dict:
    entry = CATALOGUE[book]
    row: dict = {
        "book": f"{book} {entry.name}",
        "id": book,
        "group": entry.group,
        "kind": entry.kind,
        "style": entry.style,
        "records": 0,
        "words": 0,
        "parts": 0,
    }
    for reason in REMOVALS:
        row[reason] = row[f"{reason}_words"] = 0
    row.update({f"unsafe_{category}": 0 for category in SAFETY_CATEGORIES})
    for name in SPLIT_NAMES:
        row[name] = row[f"words_{name}"] = 0
    return row
