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


def deduplicate(stories: list[Story], params: DedupeParams) -> tuple[list[Story], list[Duplicate]]:
    """Drop duplicates and set ``tale`` so that related stories share one key."""
    kept, dropped = _drop_exact(stories)
    if len(kept) < 2:
        return kept, dropped
    similarity = _similarity(kept)
    titles = [_title_words(story.title) for story in kept]
    survivors: list[int] = []
    for i, story in enumerate(kept):
        best = survivors[int(np.argmax(similarity[i, survivors]))] if survivors else None
        if best is not None and similarity[i, best] >= params.near_duplicate:
            dropped.append(Duplicate(story, kept[best].id, "near", round(float(similarity[i, best]), 4)))
            continue
        namesakes = [j for j in survivors if titles[i] and titles[i] == titles[j]
                     and kept[j].collection != story.collection  # translations live in other books
                     and similarity[i, j] >= params.near_duplicate_same_title]
        if namesakes:
            j = max(namesakes, key=lambda j: similarity[i, j])
            dropped.append(Duplicate(story, kept[j].id, "near", round(float(similarity[i, j]), 4)))
        else:
            survivors.append(i)
    _group_tales([kept[i] for i in survivors], similarity[np.ix_(survivors, survivors)], params.same_tale)
    return [kept[i] for i in survivors], dropped


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
    words = re.findall(r"[a-z]+", title.lower())
    return frozenset(w.removesuffix("s") for w in words if w not in _TITLE_STOPWORDS and len(w) > 1)


def _similarity(stories: list[Story]) -> np.ndarray:
    vectors = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=1).fit_transform(
        [s.text for s in stories]
    )
    return (vectors @ vectors.T).toarray()  # rows are L2-normalised, so this is the cosine


def _group_tales(stories: list[Story], similarity: np.ndarray, threshold: float) -> None:
    parent = list(range(len(stories)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(similarity >= threshold, k=1))):
        a, b = root(int(i)), root(int(j))
        parent[max(a, b)] = min(a, b)  # the earliest story names the group
    for i, story in enumerate(stories):
        story.tale = stories[root(i)].tale
