"""The screen's classifier: TF-IDF of lemmas and lemma pairs, one logistic regression per age group and category.

Head (age group ``a``, category ``c``) scores the chance that a passage touches ``c`` in a way not
acceptable for ``a``. It is fitted with scikit-learn (:func:`fit`) and saved as plain numbers
(:meth:`Classifier.to_json`); scoring is numpy only, so the server needs neither scikit-learn nor a
pickle. ``tests/test_safety.py`` pins the scores to scikit-learn's own ``predict_proba``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES
from aitale.safety.lemmas import features

NGRAMS = (1, 2)


def analyse(text: str) -> list[str]:
    """The terms a passage is counted by: its lemmas, then each pair of neighbouring lemmas."""
    lemmas = features(text)
    return [*lemmas, *(f"{a} {b}" for a, b in zip(lemmas, lemmas[1:]))]


class Classifier:
    def __init__(self, vocabulary: dict[str, int], idf: Sequence[float], heads: dict[str, dict[str, dict]]):
        self.vocabulary, self.idf = vocabulary, np.asarray(idf, dtype=np.float64)
        self.heads = heads
        # one matrix of every head: rows follow (age group, category)
        self._keys = [(a, c) for a in AGE_GROUPS for c in SAFETY_CATEGORIES]
        self._coef = np.array([heads[a][c]["coef"] for a, c in self._keys], dtype=np.float64)
        self._intercept = np.array([heads[a][c]["intercept"] for a, c in self._keys], dtype=np.float64)

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The text's TF-IDF row as scikit-learn's TfidfVectorizer(sublinear_tf=True) has it: (columns, values)."""
        counts = [(j, n) for term, n in Counter(analyse(text)).items() if (j := self.vocabulary.get(term)) is not None]
        columns = np.array([j for j, _ in counts], dtype=np.int64)
        values = np.array([1 + math.log(n) for _, n in counts]) * self.idf[columns]
        norm = np.linalg.norm(values)
        return columns, values / norm if norm else values

    def scores(self, texts: Sequence[str]) -> list[dict[str, dict[str, float]]]:
        """Per text: {age group: {category: probability}}."""
        if not texts:
            return []
        logits = np.array([values @ self._coef[:, columns].T for columns, values in map(self.vector, texts)])
        logits = logits.reshape(len(texts), -1) + self._intercept
        probs = 1 / (1 + np.exp(-logits))
        return [
            {a: {c: float(row[k]) for k, (a2, c) in enumerate(self._keys) if a2 == a} for a in AGE_GROUPS}
            for row in probs
        ]

    def to_json(self) -> dict:
        return {
            "ngrams": list(NGRAMS),
            "vocabulary": self.vocabulary,
            "idf": self.idf.round(10).tolist(),
            "heads": self.heads,
        }

    @classmethod
    def from_json(cls, saved: dict) -> Classifier:
        return cls(saved["vocabulary"], saved["idf"], saved["heads"])


def targets(categories: Sequence[Sequence[str]], youngest: Sequence[str | None], age_group: str, category: str):
    """1 where a passage touches ``category`` and is not acceptable for ``age_group``."""
    allowed = AGE_GROUPS[: AGE_GROUPS.index(age_group) + 1]
    return np.array([category in cats and young not in allowed for cats, young in zip(categories, youngest)], dtype=int)


def fit(texts, categories, youngest, *, regularization: float, min_df: int, seed: int):
    """Fitted scikit-learn pieces (vectorizer, {(age, category): model}) and the numpy :class:`Classifier`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=analyse, sublinear_tf=True, min_df=min_df)
    matrix = vectorizer.fit_transform(list(texts))
    models, heads = {}, {a: {} for a in AGE_GROUPS}
    for a in AGE_GROUPS:
        for c in SAFETY_CATEGORIES:
            y = targets(categories, youngest, a, c)
            if y.min() == y.max():
                raise ValueError(f"no passage {'is' if y.max() == 0 else 'is not'} {c} for ages {a}: cannot fit")
            model = LogisticRegression(C=regularization, class_weight="balanced", max_iter=5000, random_state=seed)
            models[a, c] = model.fit(matrix, y)
            heads[a][c] = {"coef": model.coef_[0].round(10).tolist(), "intercept": float(model.intercept_[0])}
    vocabulary = {t: int(i) for t, i in sorted(vectorizer.vocabulary_.items())}
    return vectorizer, models, Classifier(vocabulary, vectorizer.idf_, heads)
