"""The screen the ``safety`` stage writes: fitted, and its thresholds chosen, on the labelled train part only;
measured on the test part: the untouched test part of the first labelled set, the new test part, and both."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from aitale.labels import AGE_GROUPS
from aitale.params import SafetyParams
from aitale.safety import legacy
from aitale.safety.classifier import UNSAFE, Featurizer, fit
from aitale.safety.concepts import Concepts
from aitale.safety.confusables import fold
from aitale.safety.labelled import Passage
from aitale.safety.measure import curve, judges, report
from aitale.safety.profanity import Profanity
from aitale.safety.rules import Rules, learn_exceptions
from aitale.safety.screen import Screen
from aitale.safety.thresholds import NEVER, choose, out_of_fold

PARTS = {  # the test parts reported, by name
    "untouched_test": lambda p: p.untouched,
    "new_test": lambda p: not p.untouched,
    "test": lambda p: True,
}


def build(
    passages: list[Passage],
    lexicon: dict,
    concepts: dict,
    alikes: dict,
    profanity: dict | None,
    params: SafetyParams,
    stories: list[tuple[str, str]] = (),
) -> tuple[Screen, dict, dict]:
    """The screen, its metrics (each judge's precision and recall per test part and age policy), and its
    precision-recall curves ({age: {part: [{recall, precision, threshold}]}, with the operating point)."""
    train = [p for p in passages if p.split == "train"]
    test = [p for p in passages if p.split == "test"]
    if not train or not test:
        raise ValueError("the labelled passages need both a train and a test part")
    screen = fit_screen(train, lexicon, concepts, alikes, profanity, params, stories)
    before = legacy.old_screen([p for p in train if p.untouched], lexicon, params)
    every = judges(screen, before)
    parts = {name: [p for p in test if belongs(p)] for name, belongs in PARTS.items()}
    metrics = {
        "passages": {"train": len(train), **{name: len(ps) for name, ps in parts.items()}},
        "test_kinds": dict(sorted(Counter(p.kind for p in test).items())),
        "features": {name: len(b.get("vocabulary", [0])) for name, b in screen.classifier.blocks.items()},
        "learned_exceptions": len(screen.rules.lexicon["exceptions"]) - len(lexicon.get("exceptions", [])),
        "thresholds": screen.thresholds,
        **{
            name: {age: {j: report(ps, judge, age) for j, judge in every.items()} for age in AGE_GROUPS}
            for name, ps in parts.items()
        },
    }
    curves = {
        age: {name: curve(screen, parts[name], age) for name in ("untouched_test", "new_test")} for age in AGE_GROUPS
    }
    return screen, metrics, curves


def fit_screen(
    train: list[Passage],
    lexicon: dict,
    concepts: dict,
    alikes: dict,
    profanity: dict | None,
    params: SafetyParams,
    stories: list[tuple[str, str]] = (),
) -> Screen:
    """Rules (with the exceptions learned from the safe train passages), classifier and cross-validated thresholds,
    the ``unsafe`` ones raised where needed so that ``params.stories_pass`` of ``stories`` ((text, age group)) pass."""
    rules = Rules(lexicon)
    if "exceptions" in params.features:
        safe = [fold(p.text, alikes) for p in train if not p.unsafe_for(AGE_GROUPS[0])]
        unsafe = [fold(p.text, alikes) for p in train if p.unsafe_for(AGE_GROUPS[0])]
        rules = rules.with_exceptions(learn_exceptions(rules, safe, unsafe))
    featurizer = Featurizer(
        params.features,
        Concepts(concepts) if {"concepts", "relations"} & set(params.features) else None,
        Profanity(profanity) if "profanity" in params.features and profanity else None,
        rules.excused,
    )
    folded = [p.model_copy(update={"text": fold(p.text, alikes)}) for p in train]
    scores = out_of_fold(folded, featurizer, params)
    ruled = {a: np.array([any(h.flags(a) for h in rules.hits(p.text)) for p in folded]) for a in AGE_GROUPS}
    thresholds = choose(folded, scores, ruled, params)
    *_, fitted = fit(folded, featurizer, regularization=params.regularization, min_df=params.min_df, seed=params.seed)
    screen = Screen(rules, fitted, thresholds, params.passage_sentences, alikes)
    for age in AGE_GROUPS:
        own = [text for text, group in stories if group == age]
        if own:
            thresholds[age][UNSAFE] = max(
                thresholds[age][UNSAFE], passing_threshold(screen, own, age, params.stories_pass)
            )
    return screen


def passing_threshold(screen: Screen, texts: list[str], age_group: str, share: float) -> float:
    """The lowest ``unsafe`` threshold (on the 1e-4 grid) at which ``share`` of ``texts`` pass for ``age_group``."""
    held = {a: {**limits, UNSAFE: NEVER} if a == age_group else limits for a, limits in screen.thresholds.items()}
    verdicts = Screen(screen.rules, screen.classifier, held, screen.passage_sentences, screen.alikes).judge_many(
        texts, age_group
    )
    scores = sorted(v.unsafe for v in verdicts if v.safe)  # a story a rule fails fails at any threshold
    needed = math.ceil(share * len(texts))
    if needed == 0:
        return 0.0
    if needed > len(scores):
        return NEVER
    return math.floor(scores[needed - 1] * 1e4) / 1e4 + 1e-4
