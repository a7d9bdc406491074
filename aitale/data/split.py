"""Train/val/test split by tale: seeded, deterministic, and never splitting one tale's tellings."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from aitale.data.records import Story
from aitale.params import SplitParams

SPLITS = ("train", "val", "test")


def split_by_tale(stories: list[Story], params: SplitParams, seed: int) -> dict[str, list[Story]]:
    """Assign whole tales to test, then val, until each holds its share of stories.

    Tales are visited in an order given by a seeded hash of their key, so the result depends
    only on the seed and the set of tales, not on the order stories were loaded in.
    """
    tales: dict[str, list[Story]] = defaultdict(list)
    for story in stories:
        tales[story.tale].append(story)
    order = sorted(tales, key=lambda tale: hashlib.sha256(f"{seed}\0{tale}".encode()).hexdigest())
    targets = {"test": params.test * len(stories), "val": params.val * len(stories)}
    splits: dict[str, list[Story]] = {name: [] for name in SPLITS}
    for tale in order:
        name = next((n for n in ("test", "val") if len(splits[n]) < targets[n] and targets[n] > 0), "train")
        splits[name].extend(tales[tale])
    for name in SPLITS:
        splits[name].sort(key=lambda story: story.id)
    return splits
