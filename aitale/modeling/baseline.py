"""Labelled text, the TF-IDF + logistic-regression classifier every head is measured against, and scoring.

scikit-learn only (no torch): the prepare stage tags book stories with it. A fitted baseline is
saved as JSON (:func:`baseline_to_json`: vocabulary, idf and the linear model; no pickle) and read
back by :class:`SavedBaseline`, which scores exactly as the fitted one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier


@dataclass(frozen=True)
class Task:
    """One head's job: its labels, and whether a passage may carry several."""

    name: str
    labels: tuple[str, ...]
    multi_label: bool = False

    def targets(self, examples: Sequence[Example]) -> np.ndarray:
        """(n, labels) 0/1 for multi-label tasks, (n,) class indices otherwise."""
        if self.multi_label:
            return np.array([[label in ex.labels for label in self.labels] for ex in examples], dtype=np.float32)
        return np.array([self.labels.index(ex.labels[0]) for ex in examples], dtype=np.int64)


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]
    group: str  # the story it comes from: a story's passages are judged together


class Baseline:
    """TF-IDF of words and word pairs, logistic regression (one-vs-rest for multi-label tasks)."""

    def __init__(self, task: Task, seed: int):
        self.task = task
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        model = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
        self.model = OneVsRestClassifier(model) if task.multi_label else model

    def fit(self, examples: Sequence[Example]) -> Baseline:
        targets = self.task.targets(examples)
        present = targets.any(0) if self.task.multi_label else None
        if present is not None and not present.all():  # a label no passage has: one-vs-rest needs both classes
            targets = targets.copy()
            targets[0, ~present] = 1
        self.model.fit(self.vectorizer.fit_transform([ex.text for ex in examples]), targets)
        return self

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        scores = self.model.predict_proba(self.vectorizer.transform(list(texts)))
        if not self.task.multi_label:  # columns follow the classes seen in training
            full = np.zeros((len(texts), len(self.task.labels)))
            full[:, self.model.classes_] = scores
            return full
        return scores


def baseline_to_json(baseline: Baseline) -> dict:
    """Everything :class:`SavedBaseline` needs to score text: vocabulary, idf and the linear model (no pickle)."""
    vectorizer = baseline.vectorizer
    if baseline.task.multi_label:
        estimators = baseline.model.estimators_
        coef = np.vstack([e.coef_ for e in estimators])
        intercept = np.concatenate([e.intercept_ for e in estimators])
    else:
        coef, intercept = baseline.model.coef_, baseline.model.intercept_
    return {
        "task": baseline.task.name,
        "labels": list(baseline.task.labels),
        "multi_label": baseline.task.multi_label,
        "classes": [int(c) for c in getattr(baseline.model, "classes_", range(len(baseline.task.labels)))],
        "ngram_range": list(vectorizer.ngram_range),
        "vocabulary": {t: int(i) for t, i in sorted(vectorizer.vocabulary_.items())},
        "idf": vectorizer.idf_.round(8).tolist(),
        "coef": coef.round(8).tolist(),
        "intercept": intercept.round(8).tolist(),
    }


class SavedBaseline:
    """A baseline read back from :func:`baseline_to_json`, scoring with scikit-learn's own vectorizer."""

    def __init__(self, saved: dict):
        self.task = Task(saved["task"], tuple(saved["labels"]), saved["multi_label"])
        self.vectorizer = TfidfVectorizer(
            ngram_range=tuple(saved["ngram_range"]), sublinear_tf=True, vocabulary=saved["vocabulary"]
        )
        self.vectorizer.fit([""])  # sets up the fixed vocabulary; the idf is replaced below
        self.vectorizer.idf_ = np.asarray(saved["idf"])
        self.coef, self.intercept = np.asarray(saved["coef"]), np.asarray(saved["intercept"])
        self.classes = saved["classes"]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        scores = self.vectorizer.transform(list(texts)) @ self.coef.T + self.intercept
        if self.task.multi_label or scores.shape[1] == 1:
            probs = 1 / (1 + np.exp(-scores))
            if not self.task.multi_label:  # two classes: the one column scores the second
                probs = np.hstack([1 - probs, probs])
        else:
            shifted = np.exp(scores - scores.max(1, keepdims=True))
            probs = shifted / shifted.sum(1, keepdims=True)
        if self.task.multi_label:
            return probs
        full = np.zeros((len(texts), len(self.task.labels)))
        full[:, self.classes] = probs
        return full


def by_story(examples: Sequence[Example], probabilities: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Each story's mean passage probability, stories in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(ex.group, []).append(i)
    return list(groups), np.stack([probabilities[rows].mean(0) for rows in groups.values()])


def predictions(task: Task, probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Labels from probabilities: above ``threshold`` (at least the likeliest one) or the argmax."""
    if not task.multi_label:
        return probabilities.argmax(1)
    chosen = probabilities >= threshold
    chosen[np.arange(len(chosen)), probabilities.argmax(1)] = True
    return chosen.astype(np.float32)


def macro_f1(task: Task, targets: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 over the labels that occur in ``targets`` (a label absent from the held-out set is not scored)."""
    if task.multi_label:
        present = np.flatnonzero(targets.any(0))
        return float(f1_score(targets[:, present], predicted[:, present], average="macro", zero_division=0))
    present = np.unique(targets)
    return float(f1_score(targets, predicted, labels=present, average="macro", zero_division=0))
