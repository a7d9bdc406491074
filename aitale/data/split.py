"""Train/val/test split by tale, and the hold-out: seeded, deterministic, never splitting one tale's tellings."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from aitale.data.records import Story
from aitale.params import SplitParams

SPLITS = ("train", "val", "test")
HOLDOUT = "holdout"  # stories of collections (or tales) training never sees: data/processed/holdout.jsonl
CUSTOM = "custom"  # Story.source of AI Tale's own stories


def split_by_tale(stories: list[Story], params: SplitParams, seed: int) -> dict[str, list[Story]]:
    """Assign whole tales to test, then val, until each holds its share of stories.

    Tales are visited in an order given by a seeded hash of their key, so the result depends
    only on the seed and the set of tales, not on the order stories were loaded in.
    """
    tales = _tales(stories)
    order = sorted(tales, key=lambda tale: _hash(seed, tale))
    targets = {"test": params.test * len(stories), "val": params.val * len(stories)}
    splits: dict[str, list[Story]] = {name: [] for name in SPLITS}
    for tale in order:
        name = next((n for n in ("test", "val") if len(splits[n]) < targets[n] and targets[n] > 0), "train")
        splits[name].extend(tales[tale])
    for name in SPLITS:
        splits[name].sort(key=lambda story: story.id)
    return splits


@dataclass
class Holdout:
    kept: list[Story]  # what the train/val/test split gets
    held_out: list[Story]  # data/processed/holdout.jsonl
    dropped: list[tuple[Story, str]]  # other books' tellings of a held-out tale, with the held-out story's id


def hold_out(stories: list[Story], params: SplitParams, seed: int) -> Holdout:
    """Take out the stories no model may train on: leave-one-book-out and a share of the custom stories.

    * Every story of a book in ``params.holdout_books`` is held out. A story of another book that the
      deduplication grouped with one of them (a related telling of the same tale) goes to no split at
      all, so training never meets the tale.
    * Of the custom stories, whole tales are held out in the order of a seeded hash (different from the
      split's) until ``params.holdout_custom`` of the custom stories are.
    """
    books = {f"pg{book}/" for book in params.holdout_books}
    from_book = lambda story: story.source != CUSTOM and story.id.startswith(tuple(books))  # noqa: E731
    tales = _tales(stories)
    held: set[str] = {tale for tale, members in tales.items() if any(from_book(s) for s in members)}
    custom = [tale for tale, members in tales.items() if all(s.source == CUSTOM for s in members)]
    target = params.holdout_custom * sum(len(tales[t]) for t in custom)
    taken = 0
    for tale in sorted(custom, key=lambda t: _hash(seed, f"holdout\0{t}")):
        if taken >= target or target == 0:
            break
        held.add(tale)
        taken += len(tales[tale])
    kept, held_out, dropped = [], [], []
    for story in stories:
        if story.tale not in held:
            kept.append(story)
        elif from_book(story) or story.source == CUSTOM:
            held_out.append(story)
        else:
            dropped.append((story, next(s.id for s in tales[story.tale] if from_book(s))))
    held_out.sort(key=lambda story: story.id)
    return Holdout(kept, held_out, dropped)


def _tales(stories: list[Story]) -> dict[str, list[Story]]:
    tales: dict[str, list[Story]] = defaultdict(list)
    for story in stories:
        tales[story.tale].append(story)
    return tales


def _hash(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()
