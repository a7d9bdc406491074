"""Creativity: creative language usage, in [0, 1]; half of it is grammar.

``variety``: the mean of distinct-1, -2 and -3 (unique over all n-grams) over every window of 100
consecutive n-grams (a moving average, so a long story is not penalised for its length), times 1 -
``repetition_rate`` (seq-rep-4: the share of word 4-grams repeating an earlier one, which loops and copied
passages raise). Variety alone rates a story's words in random order as the most creative text of all, so
``measure`` follows the usual definition of creativity, new and fitting: variety (cubed) times coherence's
measure. ``distinct_n`` is the plain whole-text ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aitale.evaluation.grammar import with_grammar
from aitale.evaluation.narrative import coherence
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
    """Creative language, in [0, 1]: half ``measure`` (varied language that hangs together), half grammar."""
    return with_grammar(measure(text), text)


def measure(text: str) -> float:
    """``variety`` cubed times coherence's own measure, in [0, 1]: new words that still hang together.

    Cubed so that a loop costs more variety than the coherence it adds (a repeated paragraph raises the
    similarity of neighbouring sentences): with variety to the first power, 80-90% of looped stories score
    below their original; cubed, 97% or more.
    """
    return variety(text) ** 3 * coherence.measure(text)


def variety(text: str) -> float:
    """Moving-window distinct-1/2/3 times (1 - repetition rate), in [0, 1]; 0 for a text without words."""
    words = lower_words(text)
    if not words:
        return 0.0
    ids = _word_ids(words)
    distinct = [_moving_distinct(_ngram_ids(ids, n), _WINDOW) for n in (1, 2, 3) if len(words) >= n]
    return float(np.mean(distinct)) * (1.0 - repetition_rate(text))


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
