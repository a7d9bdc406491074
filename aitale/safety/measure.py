"""Precision and recall of a screen on labelled passages, overall and per category, for each age policy, and its
precision-recall curve over the ``unsafe`` head's threshold.

A passage is a positive for age group ``a`` when it is not acceptable for ``a``; for category ``c``,
when it is also labelled ``c``. A screen is right on a category when it flags that category.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aitale.labels import SAFETY_CATEGORIES
from aitale.safety import legacy
from aitale.safety.classifier import UNSAFE
from aitale.safety.labelled import Passage
from aitale.safety.rules import Rules
from aitale.safety.screen import Screen
from aitale.safety.thresholds import NEVER

# (texts, age group) -> per text, the categories flagged (empty: safe)
Judge = Callable[[Sequence[str], str], list[set[str]]]

LEGACY_CATEGORY = {
    "graphic_violence": "violence",
    "sexual_content": "sexual",
    "substances": "substances",
    "slurs_and_profanity": "profanity_slurs",
}


def keyword_filter(texts: Sequence[str], age_group: str) -> list[set[str]]:
    """The old prepare filter: one policy for every age, four categories."""
    return [{LEGACY_CATEGORY[v.split(":")[0]] for v in legacy.violations(t)} for t in texts]


def judges(screen: Screen, before: Screen) -> dict[str, Judge]:
    """The screens the report compares: the old keyword filter, the screen before this one (rules and its lemma
    classifier), and this one's rules alone, classifier alone, and whole."""
    never = {a: dict.fromkeys(limits, NEVER) for a, limits in screen.thresholds.items()}
    rules_only = Screen(screen.rules, screen.classifier, never, screen.passage_sentences, screen.alikes)
    classifier_only = Screen(Rules({}), screen.classifier, screen.thresholds, screen.passage_sentences, screen.alikes)

    def of(s: Screen) -> Judge:
        return lambda texts, age: [set(v.categories) for v in s.judge_many(list(texts), age)]

    return {
        "keyword_filter": keyword_filter,
        "before": of(before),
        "rules": of(rules_only),
        "classifier": of(classifier_only),
        "screen": of(screen),
    }


def curve(screen: Screen, passages: Sequence[Passage], age_group: str, points: int = 101) -> list[dict]:
    """Precision and recall as the ``unsafe`` threshold moves (rules and categories as they are), at most
    ``points`` thresholds; the screen's own threshold is the row with ``operating`` true."""
    chosen = screen.thresholds[age_group][UNSAFE]
    held = {a: {**limits, UNSAFE: NEVER} if a == age_group else limits for a, limits in screen.thresholds.items()}
    verdicts = Screen(screen.rules, screen.classifier, held, screen.passage_sentences, screen.alikes).judge_many(
        [p.text for p in passages], age_group
    )
    base = [not v.safe for v in verdicts]
    unsafe = [p.unsafe_for(age_group) for p in passages]
    grid = sorted({round(i / (points - 1), 4) for i in range(points)} | {round(min(chosen, 1.0), 4)})
    rows = []
    for t in grid:
        measured = rates([b or v.unsafe >= t for b, v in zip(base, verdicts)], unsafe)
        operating = t == round(min(chosen, 1.0), 4)
        rows.append({"threshold": t, "recall": measured["recall"], "precision": measured["precision"],
                     "operating": operating})  # fmt: skip
    return rows


def rates(predicted: Sequence[bool], actual: Sequence[bool]) -> dict:
    tp = sum(p and a for p, a in zip(predicted, actual))
    fp = sum(p and not a for p, a in zip(predicted, actual))
    fn = sum(a and not p for p, a in zip(predicted, actual))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "positives": tp + fn, "flagged": tp + fp}


def report(passages: Sequence[Passage], judge: Judge, age_group: str) -> dict:
    """{"overall": rates, "per_category": {category: rates}} of one screen for one age policy."""
    flagged = judge([p.text for p in passages], age_group)
    unsafe = [p.unsafe_for(age_group) for p in passages]
    out = {"overall": rates([bool(f) for f in flagged], unsafe), "per_category": {}}
    for c in SAFETY_CATEGORIES:
        actual = [u and c in p.categories for u, p in zip(unsafe, passages)]
        out["per_category"][c] = rates([c in f for f in flagged], actual)
    return out
