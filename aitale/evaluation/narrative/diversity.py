"""Diversity of a set of stories: self-BLEU (lower: a more diverse set)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def self_bleu(texts: Sequence[str]) -> float:
    """Mean BLEU (sacrebleu, 0-100) of each text against all the others; lower means a more diverse set.

    The same statistics as ``sacrebleu.sentence_bleu(text, others)`` (13a tokens, exp
    smoothing, effective order, closest reference length), counted once for the whole set
    (per n-gram, the highest count in any text and the runner-up) instead of re-counting the
    references for every text, so a few hundred stories take about a second.
    """
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    count = len(texts)
    if count < 2:
        return 0.0
    tokenize = Tokenizer13a()
    tokens = [tokenize(t.strip()).split() for t in texts]
    lengths = [len(t) for t in tokens]
    vocab: dict[str, int] = {}
    words = np.array([vocab.setdefault(w, len(vocab)) for t in tokens for w in t], dtype=np.int64)
    owner = np.repeat(np.arange(count), lengths)
    position = np.concatenate([np.arange(n) for n in lengths]) if words.size else np.zeros(0, dtype=np.int64)
    correct = np.zeros((count, 4))
    total = np.zeros((count, 4))
    grams = words
    for order in range(1, 5):
        if order > 1:  # extend each (order-1)-gram by the next word, renumbered to stay small
            ends = np.flatnonzero(position >= order - 1)  # n-grams are stored at their last word
            pairs = grams[ends - 1] * (len(vocab) + 1) + words[ends]
            grams = np.full(len(words), -1, dtype=np.int64)
            grams[ends] = np.unique(pairs, return_inverse=True)[1]
        valid = grams >= 0 if order > 1 else np.ones(len(grams), dtype=bool)
        keys, counts = np.unique(grams[valid] * count + owner[valid], return_counts=True)
        if keys.size:
            text_of, clipped = _clipped(keys, counts, count)
            np.add.at(correct[:, order - 1], text_of, clipped)
            np.add.at(total[:, order - 1], text_of, counts)
    scores = []
    for index, length in enumerate(lengths):
        others = lengths[:index] + lengths[index + 1 :]
        ref_len = min(others, key=lambda r: (abs(r - length), r))
        scores.append(
            BLEU.compute_bleu(
                correct[index].astype(int).tolist(),
                total[index].astype(int).tolist(),
                length,
                ref_len,
                smooth_method="exp",
                effective_order=True,
            ).score
        )
    return float(np.mean(scores))


def _clipped(keys: np.ndarray, counts: np.ndarray, texts: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (n-gram, text) key (n-gram * texts + text) and its count: the text, and the count clipped to the
    most any *other* text holds (BLEU's clipping against every other text as a reference)."""
    gram_of, text_of = keys // texts, keys % texts
    # per n-gram: the highest count, the text holding it, and the second-highest count
    ranked = np.lexsort((-counts, gram_of))
    first = np.r_[True, gram_of[ranked][1:] != gram_of[ranked][:-1]]
    top_rows = ranked[first]
    second_rows = ranked[1:][~first[1:]]  # includes third and later; keep the first per n-gram
    if second_rows.size:
        second_rows = second_rows[np.r_[True, gram_of[second_rows][1:] != gram_of[second_rows][:-1]]]
    size = int(gram_of.max()) + 1
    top_count, top_text, second = np.zeros(size, np.int64), np.full(size, -1), np.zeros(size, np.int64)
    top_count[gram_of[top_rows]] = counts[top_rows]
    top_text[gram_of[top_rows]] = text_of[top_rows]
    second[gram_of[second_rows]] = counts[second_rows]
    available = np.where(top_text[gram_of] == text_of, second[gram_of], top_count[gram_of])
    return text_of, np.minimum(counts, available)
