"""Creativity: varied rather than repetitive language, in [0, 1]; distinct-n and the repetition rate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aitale.evaluation.narrative.words import lower_words

_WINDOW = 100  # n-grams per moving window for the length-robust distinct-n of ``creativity``
_REPEAT_NGRAM = 4  # seq-rep-4 (Welleck et al., 2019)


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(text: str, n: int) -> float:
    """Unique word n-grams over all word n-grams of ``text`` (lower-cased); 0 when it has none."""
    grams = _ngrams(lower_words(text), n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(text: str) -> float:
    """Share of word 4-grams that repeat an earlier 4-gram of the text (seq-rep-4); 0 when it has none."""
    grams = _ngrams(lower_words(text), _REPEAT_NGRAM)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def creativity(text: str) -> float:
    """Moving-window distinct-1/2/3 times (1 - repetition rate), in [0, 1] (see the module docstring)."""
    words = lower_words(text)
    if not words:
        return 0.0
    ids = _word_ids(words)
    variety = [_moving_distinct(_ngram_ids(ids, n), _WINDOW) for n in (1, 2, 3) if len(words) >= n]
    return float(np.mean(variety)) * (1.0 - repetition_rate(text))


def _word_ids(words: Sequence[str]) -> np.ndarray:
    vocab: dict[str, int] = {}
    return np.array([vocab.setdefault(w, len(vocab)) for w in words], dtype=np.int64)


def _ngram_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """One integer per n-gram: equal n-grams get equal numbers."""
    grams = ids[: len(ids) - n + 1].copy()
    for k in range(1, n):  # renumbered after each step so that the numbers stay small
        pairs = grams * (int(ids.max()) + 1) + ids[k : len(ids) - n + 1 + k]
        grams = np.unique(pairs, return_inverse=True)[1]
    return grams


def _moving_distinct(grams: np.ndarray, window: int) -> float:
    """Mean unique share over every run of ``window`` consecutive n-grams (the whole list when shorter).

    Position i adds one unique n-gram to each window starting after the previous occurrence of
    its n-gram, so the sum over windows is counted per position instead of per window.
    """
    n = len(grams)
    if n <= window:
        return len(np.unique(grams)) / n
    order = np.argsort(grams, kind="stable")
    previous = np.full(n, -1)
    same = grams[order[1:]] == grams[order[:-1]]
    previous[order[1:][same]] = order[:-1][same]
    position = np.arange(n)
    first = np.maximum(np.maximum(position - window + 1, previous + 1), 0)
    last = np.minimum(position, n - window)
    return float(np.clip(last - first + 1, 0, None).sum() / ((n - window + 1) * window))
