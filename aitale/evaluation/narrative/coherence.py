"""Coherence: how well the sentences of a story hang together, in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aitale.data.text import WORD, paragraphs, sentences
from aitale.evaluation.narrative.words import QUOTE, STOPWORDS, lower_words, opening, stem

# Pronouns stand for the entity they refer to: "she" in two sentences is a shared entity.
_PRONOUN_CLASS = {
    "he": "@he",
    "him": "@he",
    "his": "@he",
    "himself": "@he",
    "she": "@she",
    "her": "@she",
    "hers": "@she",
    "herself": "@she",
    "they": "@they",
    "them": "@they",
    "their": "@they",
    "themselves": "@they",
    "it": "@it",
    "its": "@it",
    "i": "@i",
    "me": "@i",
    "my": "@i",
    "myself": "@i",
    "you": "@you",
    "your": "@you",
    "yours": "@you",
    "we": "@we",
    "us": "@we",
    "our": "@we",
}


def coherence(text: str) -> float:
    """Narrative coherence in [0, 1] (see the module docstring)."""
    sents = sentences(text)
    if not sents:
        return 0.0
    parts = (3.0 * _cohesion(sents), 0.5 * _given_before_new(text), 1.0 * opening(sents[0]), 1.0 * _dialogue(text))
    return sum(parts) / 5.5


def _units(sentence: str) -> set[str]:
    units = set()
    for word in (w.lower() for w in WORD.findall(sentence)):
        if word in _PRONOUN_CLASS:
            units.add(_PRONOUN_CLASS[word])
        elif word not in STOPWORDS and len(word) > 1:
            units.add(stem(word))
    return units


def _cohesion(sents: Sequence[str]) -> float:
    """Neighbour similarity as a share of neighbour + any-pair similarity (0.5: no better than chance)."""
    n = len(sents)
    if n < 3:
        return 0.5
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, sentence in enumerate(sents):
        for unit in _units(sentence):
            rows.append(i)
            cols.append(vocab.setdefault(unit, len(vocab)))
    if not vocab:
        return 0.5
    x = np.zeros((n, len(vocab)))
    x[rows, cols] = 1.0
    x *= np.log((n + 1) / x.sum(0))[None, :]  # idf within the story
    norms = np.linalg.norm(x, axis=1)
    x /= np.where(norms > 0, norms, 1.0)[:, None]
    total = x.sum(0)
    any_pair = (total @ total - (x * x).sum()) / (n * (n - 1))
    local = ((x[:-1] * x[1:]).sum(1).mean() + 0.5 * (x[:-2] * x[2:]).sum(1).mean()) / 1.5
    return float(local / (local + any_pair)) if local + any_pair > 0 else 0.5


def _given_before_new(text: str) -> float:
    """Share of words met both as "a X" and "the X" whose indefinite use comes first; 0.5 when none."""
    words = lower_words(text)
    first: dict[str, dict[str, int]] = {}
    for i in range(1, len(words)):
        article = words[i - 1]
        if article in ("a", "an", "the") and words[i] not in STOPWORDS:
            first.setdefault(stem(words[i]), {}).setdefault("the" if article == "the" else "a", i)
    both = [uses for uses in first.values() if len(uses) == 2]
    if not both:
        return 0.5
    return sum(uses["a"] < uses["the"] for uses in both) / len(both)


def _dialogue(text: str) -> float:
    """Share of quote marks that open a quotation where none is open or close an open one."""
    errors = marks = 0
    for paragraph in paragraphs(text):
        open_quote = {'"': False, "'": False}
        for match in QUOTE.finditer(paragraph):
            mark, i = match.group(0), match.start()
            marks += 1
            before = paragraph[i - 1] if i else " "
            opening = before.isspace() or before in "([-"
            if opening and not open_quote[mark]:
                open_quote[mark] = True
            elif not opening and open_quote[mark]:
                open_quote[mark] = False
            else:
                errors += 1
    return 1.0 - errors / marks if marks else 1.0
