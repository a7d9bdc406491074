"""The profanity signal: alt-profanity-check's model (a linear SVM on about 200,000 labelled comments, calibrated
five times over), saved as plain numbers so that the screen scores it with numpy alone.

:func:`extract` reads the model the package ships (at build time, where scikit-learn is); :class:`Profanity`
scores as the package's ``predict_prob`` does: TF-IDF of its words (two letters or more, lower-cased), each
fold's SVM margin through its sigmoid calibration, averaged over the folds. ``tests/test_safety_judge.py``
pins the scores to the package's own.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"(?u)\b\w\w+\b")  # the package's vectorizer's token_pattern


def extract() -> dict:
    """The shipped model's numbers (needs alt-profanity-check and scikit-learn)."""
    from profanity_check import profanity_check as shipped

    vectorizer, model = shipped.vectorizer, shipped.model
    folds = model.calibrated_classifiers_
    return {
        "vocabulary": {t: int(i) for t, i in sorted(vectorizer.vocabulary_.items())},
        "idf": vectorizer.idf_.round(10).tolist(),
        "coef": [f.estimator.coef_[0].round(10).tolist() for f in folds],
        "intercept": [float(f.estimator.intercept_[0]) for f in folds],
        "a": [float(f.calibrators[0].a_) for f in folds],
        "b": [float(f.calibrators[0].b_) for f in folds],
    }


class Profanity:
    def __init__(self, saved: dict):
        self.saved = saved
        self.vocabulary = saved["vocabulary"]
        self.idf = np.asarray(saved["idf"], dtype=np.float64)
        self.coef = np.asarray(saved["coef"], dtype=np.float64)
        self.intercept = np.asarray(saved["intercept"], dtype=np.float64)
        self.a, self.b = np.asarray(saved["a"]), np.asarray(saved["b"])

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Per text, the chance that it is offensive (the package's ``predict_prob``)."""
        out = np.empty(len(texts))
        for i, text in enumerate(texts):
            counts = Counter(j for w in _WORD.findall(text.lower()) if (j := self.vocabulary.get(w)) is not None)
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts)) * self.idf[columns]
            norm = np.linalg.norm(values)
            margins = self.coef[:, columns] @ (values / norm if norm else values) + self.intercept
            out[i] = float(np.mean(1 / (1 + np.exp(self.a * margins + self.b))))
        return out

    def to_json(self) -> dict:
        return self.saved
