"""Exact and near-duplicate removal, and grouping of retellings into tales.

Two translations of one Grimm tale share few exact phrases but most of their content
words (names, objects, events), so similarity is the cosine between TF-IDF vectors of
content words. Pairs above ``near_duplicate`` are one tale told twice: the later copy (in
source order) is dropped. A fable of eighty words shares too few words with its other
translation for that, but keeps its title ("The Frog and the Ox", "The Ox and the Frog"):
pairs from two books whose titles have the same words need only ``near_duplicate_same_title``. Pairs above
the lower ``same_tale`` are kept but grouped, so that the split never puts related
tellings on both sides of the train/test line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from aitale.data.records import Story
from aitale.params import DedupeParams

_TITLE_STOPWORDS = {"the", "a", "an", "and", "of", "or", "his", "her", "their", "story", "tale", "history"}


@dataclass(frozen=True)
class Duplicate:
    story: Story
    duplicate_of: str
    kind: str  # "exact" or "near"
    similarity: float


def deduplicate(
    stories: list[Story], params: DedupeParams, retold: Callable[[Story], bool] = lambda story: True
) -> tuple[list[Story], list[Duplicate]]:
    """Drop duplicates and set ``tale`` so that related stories share one key.

    Only the stories ``retold`` says other books may tell again (folk and fairy tales, fables) are
    compared for near duplicates and related tellings: two stories of one series share their
    characters' names, not their tale (Burgess's Adventures score up to 0.5 with each other). The
    others lose exact copies only. Stories that already share a ``tale`` (the parts of one record,
    the chapters of one novel) are never each other's duplicates, and stay in one group.
    Similarities are computed a block of rows at a time from sparse TF-IDF vectors, so ten
    thousand stories need no n x n matrix."""
    kept, dropped = _drop_exact(stories)
    compared = [story for story in kept if retold(story)]
    if len(compared) >= 2:
        compared, dropped_near = _drop_near(compared, params)
        dropped += dropped_near
    survivors = {id(story) for story in compared}
    return [story for story in kept if id(story) in survivors or not retold(story)], dropped


def _drop_near(kept: list[Story], params: DedupeParams) -> tuple[list[Story], list[Duplicate]]:
    """Near duplicates dropped (the later copy) and related tellings grouped into one ``tale``."""
    dropped: list[Duplicate] = []
    tale, title, collection = (_codes(keys) for keys in (
        [s.tale for s in kept], [_title_words(s.title) or None for s in kept], [s.collection for s in kept]))
    alive = np.zeros(len(kept), dtype=bool)  # the survivors so far
    links: list[tuple[int, int]] = []  # survivors similar enough to be held in one split
    for i, row in _similarity_rows(_vectors(kept)):
        others = alive & (tale != tale[i])
        near = _best(row, others)
        if near is None or row[near] < params.near_duplicate:
            # translations live in other books; the same title words (none counts as no title)
            namesakes = others & (title == title[i]) & (title[i] >= 0) & (collection != collection[i])
            near = _best(row, namesakes & (row >= params.near_duplicate_same_title)) if namesakes.any() else None
        if near is not None:
            dropped.append(Duplicate(kept[i], kept[near].id, "near", round(float(row[near]), 4)))
            continue
        links += [(int(j), i) for j in np.flatnonzero(alive & (row >= params.same_tale))]
        alive[i] = True
    survivors = [int(i) for i in np.flatnonzero(alive)]
    _group_tales(kept, survivors, links)
    return [kept[i] for i in survivors], dropped


def _best(row: np.ndarray, mask: np.ndarray) -> int | None:
    """The first index of the highest value of ``row`` where ``mask`` holds (None when it holds nowhere)."""
    if not mask.any():
        return None
    return int(np.argmax(np.where(mask, row, -np.inf)))


def _codes(keys: list) -> np.ndarray:
    """An integer per distinct key (in first-seen order), -1 for None."""
    seen: dict = {}
    return np.array([-1 if key is None else seen.setdefault(key, len(seen)) for key in keys], dtype=np.int64)


def _drop_exact(stories: list[Story]) -> tuple[list[Story], list[Duplicate]]:
    first: dict[str, Story] = {}
    kept, dropped = [], []
    for story in stories:
        key = hashlib.sha256(" ".join(re.findall(r"\w+", story.text.casefold())).encode()).hexdigest()
        if key in first:
            dropped.append(Duplicate(story, first[key].id, "exact", 1.0))
        else:
            first[key] = story
            kept.append(story)
    return kept, dropped


def _title_words(title: str) -> frozenset[str]:
    words = re.findall(r"[a-z]+", re.sub(r" \(part \d+\)$", "", title.lower()))  # a long tale's parts share its title
    return frozenset(w.removesuffix("s") for w in words if w not in _TITLE_STOPWORDS and len(w) > 1)


def _vectors(stories: list[Story]):
    """Sparse TF-IDF rows of the stories' content words, L2-normalised (so a dot product is the cosine)."""
    return TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=1, dtype=np.float64).fit_transform(
        [s.text for s in stories]
    )


def _similarity_rows(vectors, block: int = 512):
    """(i, cosines of story i with every story), a block of rows at a time: never the whole n x n matrix."""
    for start in range(0, vectors.shape[0], block):
        rows = (vectors[start : start + block] @ vectors.T).toarray()
        yield from ((start + k, row) for k, row in enumerate(rows))


def _group_tales(stories: list[Story], survivors: list[int], links: list[tuple[int, int]]) -> None:
    """Union the survivors that share a tale or are linked; the earliest story of a group names it."""
    parent = {i: i for i in survivors}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i in survivors:
        links.append((first.setdefault(stories[i].tale, i), i))
    for i, j in links:
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)
    names = {i: stories[root(i)].tale for i in survivors}
    for i in survivors:
        stories[i].tale = names[i]
