"""Thresholds per age group and head, chosen by cross-validation on the train part only.

Each train passage is scored by a classifier fitted on the other folds. Per age group, each category's
threshold is the one with the best F1 for that category (the category heads name what fails); the
``unsafe`` head's threshold is the highest that keeps the operating point's recall for the screen as a
whole (a rule hit or the ``unsafe`` head failing a passage), lowered further where that still keeps its
precision and gains recall.
"""

from __future__ import annotations

import numpy as np

from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES
from aitale.params import SafetyParams
from aitale.safety.classifier import HEADS, UNSAFE, Featurizer, fit, targets
from aitale.safety.labelled import Passage

NEVER = 2.0  # a threshold no probability reaches


def out_of_fold(passages: list[Passage], featurizer: Featurizer, params: SafetyParams) -> dict[str, np.ndarray]:
    """{age: (passages, heads) probabilities}, each passage scored by the classifier that did not see it."""
    from sklearn.model_selection import StratifiedKFold

    strata = [p.unsafe_for("3-5") + p.unsafe_for("9-12") for p in passages]
    folds = StratifiedKFold(params.folds, shuffle=True, random_state=params.seed)
    out = {a: np.zeros((len(passages), len(HEADS))) for a in AGE_GROUPS}
    for seen, held in folds.split(passages, strata):
        *_, fitted = fit(
            [passages[i] for i in seen],
            featurizer,
            regularization=params.regularization,
            min_df=params.min_df,
            seed=params.seed,
        )
        probs = 1 / (1 + np.exp(-fitted.logits([passages[i].text for i in held])))
        for k, a in enumerate(AGE_GROUPS):
            out[a][held] = probs[:, k * len(HEADS) : (k + 1) * len(HEADS)]
    return out


def choose(passages: list[Passage], scores: dict[str, np.ndarray], ruled: dict[str, np.ndarray], params) -> dict:
    """{age: {head: threshold}} from out-of-fold ``scores`` and the rules' verdicts (``ruled``: flags per passage)."""
    chosen = {}
    for a in AGE_GROUPS:
        limits = {c: _best_f1(scores[a][:, 1 + k], targets(passages, a, c)) for k, c in enumerate(SAFETY_CATEGORIES)}
        point = params.operating_point[a]
        limits[UNSAFE] = _unsafe(scores[a][:, 0], ruled[a], targets(passages, a, UNSAFE), point)
        chosen[a] = {UNSAFE: limits[UNSAFE], **{c: limits[c] for c in SAFETY_CATEGORIES}}
    return chosen


def _candidates(score: np.ndarray) -> np.ndarray:
    return np.unique(np.floor(score * 1e4) / 1e4)[::-1]  # highest first, on a grid of 1e-4


def _best_f1(score: np.ndarray, y: np.ndarray) -> float:
    best, at = -1.0, NEVER
    for t in _candidates(score):
        flagged = score >= t
        tp = int(np.sum(flagged & (y == 1)))
        f1 = 2 * tp / (flagged.sum() + y.sum()) if tp else 0.0
        if f1 > best:
            best, at = f1, float(t)
    return at


def _unsafe(score: np.ndarray, already: np.ndarray, y: np.ndarray, point) -> float:
    """The highest threshold keeping ``point.recall``, or a lower one with more recall at ``point.precision``."""
    positives = max(int(y.sum()), 1)
    keeps_recall, best_at_precision = NEVER, (-1.0, NEVER)
    for t in _candidates(score):
        flagged = already | (score >= t)
        tp = int(np.sum(flagged & (y == 1)))
        recall, precision = tp / positives, tp / max(int(flagged.sum()), 1)
        if keeps_recall == NEVER and recall >= point.recall:
            keeps_recall = float(t)
        if precision >= point.precision and recall > best_at_precision[0]:
            best_at_precision = (recall, float(t))
    return min(keeps_recall, best_at_precision[1])
