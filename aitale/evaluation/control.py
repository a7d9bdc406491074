"""Control accuracy: does a story asked for an age group, style and theme come out as asked?

The grid requests every age group with every style and every theme of ``evaluate.control``;
each request is written twice with the same title and seed, once with its control tokens and
once without them (the same model, unconditioned: the baseline). The classify stage's judges
decide what each story is: style and age by their classifiers, theme by the theme judge's
likeliest theme among the grid's themes; age also by the reading grade, which should fall from
9-12 to 3-5. A dimension's accuracy is the share of stories judged to be what was requested.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

import numpy as np

from aitale.data.readability import reading_grade
from aitale.labels import AGE_GROUPS, STYLES

DIMENSIONS = ("age", "style", "theme")


@dataclass(frozen=True)
class Request:
    title: str
    age_group: str
    style: str
    theme: str
    seed: int


def grid(titles: Sequence[str], themes: Sequence[str], per_condition: int, seed: int) -> list[Request]:
    """Every age group x style x theme, ``per_condition`` stories each, titles taken in turn, seeds in order."""
    conditions = list(itertools.product(AGE_GROUPS, STYLES, themes)) * per_condition
    return [
        Request(titles[i % len(titles)], age, style, theme, seed + i)
        for i, (age, style, theme) in enumerate(conditions)
    ]


def judged(judges: dict, stories: Sequence[str], themes: Sequence[str]) -> dict[str, list[str]]:
    """What each story is, per dimension, by the judges (``Judge`` objects of the classify stage)."""
    found = {"age": judges["age"].labels(list(stories)), "style": judges["style"].labels(list(stories))}
    theme_judge = judges["theme"]
    known = [t for t in themes if t in theme_judge.task.labels]
    columns = [theme_judge.task.labels.index(t) for t in known]
    probabilities = theme_judge.story_probabilities(list(stories))[:, columns]
    found["theme"] = [known[i] for i in probabilities.argmax(1)] if known else [""] * len(stories)
    return found


def accuracy(requests: Sequence[Request], found: dict[str, list[str]]) -> dict[str, float]:
    """Per dimension, the share of stories judged to be what their request asked for."""
    asked = {
        "age": [r.age_group for r in requests],
        "style": [r.style for r in requests],
        "theme": [r.theme for r in requests],
    }
    return {d: round(float(np.mean([a == f for a, f in zip(asked[d], found[d])])), 4) for d in DIMENSIONS}


def grades_by_age(requests: Sequence[Request], stories: Sequence[str]) -> dict[str, float]:
    """The mean reading grade of the stories asked for each age group."""
    return {
        age: round(fmean(reading_grade(s) for r, s in zip(requests, stories) if r.age_group == age), 3)
        for age in AGE_GROUPS
        if any(r.age_group == age for r in requests)
    }


def report(
    requests: Sequence[Request],
    conditioned: Sequence[str],
    unconditioned: Sequence[str],
    judges: dict,
    themes: Sequence[str],
) -> dict:
    """Accuracy and reading grades with and without the control tokens, and the gain in points."""
    result = {}
    for name, stories in (("conditioned", conditioned), ("unconditioned", unconditioned)):
        result[name] = {
            **accuracy(requests, judged(judges, stories, themes)),
            "reading_grade": grades_by_age(requests, stories),
        }
    result["gain_points"] = {
        d: round(100 * (result["conditioned"][d] - result["unconditioned"][d]), 1) for d in DIMENSIONS
    }
    result["judges"] = {d: judges[d].chosen for d in DIMENSIONS}
    result["stories"] = len(requests)
    return result
