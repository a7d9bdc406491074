"""Control accuracy: does a story asked for an age group, style and theme come out as asked?

The grid requests every age group with every style and every theme of ``evaluate.control``;
each request is written twice with the same title and seed, once with its control tokens and
once without them (the same model, unconditioned: the baseline). A dimension's accuracy is the
share of stories judged to be what was requested; its gain is conditioned minus unconditioned, in
points, with a paired percentile bootstrap interval (:func:`gain_interval`: a request's two stories
are resampled together).

Two sets of judges (:func:`load_judges`). ``best``: per dimension the classify stage's better
classifier, the head on the model's trunk or its TF-IDF baseline (theme: the likeliest of the grid's
themes). ``independent``: judges that learned nothing from the model: age by the reading grade
(:func:`aitale.data.readability.age_group_for`), style and theme by the TF-IDF baselines, trained on
the team's labels alone. The reading grade of the conditioned stories should also rise with the age
group asked for.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

import numpy as np

from aitale.data.readability import age_group_for, reading_grade
from aitale.data.structure import prompt
from aitale.labels import AGE_GROUPS, STYLES

DIMENSIONS = ("age", "style", "theme")
CONFIDENCE = 0.95


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


class GradeJudge:
    """The age group a story reads at, by its reading grade alone: a judge no model taught."""

    chosen = "reading_grade"

    def labels(self, stories: Sequence[str]) -> list[str]:
        return [age_group_for(story) for story in stories]


def load_judges(classifiers: str | Path) -> dict[str, dict]:
    """The ``best`` and the ``independent`` judges of every dimension, from the classify stage's folder."""
    from aitale.modeling.classify import Judge  # torch and transformers: only for a run that judges

    folder = Path(classifiers)
    return {
        "best": {d: Judge(folder / d) for d in DIMENSIONS},
        "independent": {
            "age": GradeJudge(),
            "style": Judge(folder / "style", use="baseline"),
            "theme": Judge(folder / "theme", use="baseline"),
        },
    }


def judged(judges: dict, stories: Sequence[str], themes: Sequence[str]) -> dict[str, list[str]]:
    """What each story is, per dimension, by the judges (``Judge`` objects of the classify stage)."""
    found = {"age": judges["age"].labels(list(stories)), "style": judges["style"].labels(list(stories))}
    theme_judge = judges["theme"]
    known = [t for t in themes if t in theme_judge.task.labels]
    columns = [theme_judge.task.labels.index(t) for t in known]
    probabilities = theme_judge.story_probabilities(list(stories))[:, columns]
    found["theme"] = [known[i] for i in probabilities.argmax(1)] if known else [""] * len(stories)
    return found


def matches(requests: Sequence[Request], found: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per dimension, 1.0 where a story was judged to be what its request asked for, else 0.0."""
    asked = {
        "age": [r.age_group for r in requests],
        "style": [r.style for r in requests],
        "theme": [r.theme for r in requests],
    }
    return {d: np.array([a == f for a, f in zip(asked[d], found[d])], dtype=float) for d in DIMENSIONS}


def accuracy(requests: Sequence[Request], found: dict[str, list[str]]) -> dict[str, float]:
    """Per dimension, the share of stories judged to be what their request asked for."""
    return {d: round(float(hits.mean()), 4) for d, hits in matches(requests, found).items()}


def gain_interval(
    conditioned: np.ndarray, unconditioned: np.ndarray, resamples: int, seed: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(conditioned) - mean(unconditioned)``, paired: each resample
    draws requests with replacement and keeps a request's two outcomes together. The draws are those of
    ``scipy.stats.bootstrap(paired=True, method="percentile", rng=numpy.random.default_rng(seed))``."""
    differences = np.asarray(conditioned, dtype=float) - np.asarray(unconditioned, dtype=float)
    rows = np.random.default_rng(seed).integers(0, len(differences), (resamples, len(differences)))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(differences[rows].mean(axis=1), [alpha, 1 - alpha])
    return float(low), float(high)


def figures(
    requests: Sequence[Request],
    stories: dict[str, Sequence[str]],
    judges: dict,
    themes: Sequence[str],
    resamples: int,
    seed: int,
) -> dict:
    """One set of judges' figures: accuracy conditioned and not, the gain in points and its interval."""
    hits = {name: matches(requests, judged(judges, texts, themes)) for name, texts in stories.items()}
    result = {name: {d: round(float(h[d].mean()), 4) for d in DIMENSIONS} for name, h in hits.items()}
    gains = {d: float(hits["conditioned"][d].mean() - hits["unconditioned"][d].mean()) for d in DIMENSIONS}
    intervals = {
        d: gain_interval(hits["conditioned"][d], hits["unconditioned"][d], resamples, seed) for d in DIMENSIONS
    }
    result["gain_points"] = {d: round(100 * gains[d], 1) for d in DIMENSIONS}
    result["gain_ci_low"] = {d: round(100 * intervals[d][0], 1) for d in DIMENSIONS}
    result["gain_ci_high"] = {d: round(100 * intervals[d][1], 1) for d in DIMENSIONS}
    result["judges"] = {d: judges[d].chosen for d in DIMENSIONS}
    return result


def grades_by_age(requests: Sequence[Request], stories: Sequence[str]) -> dict[str, float]:
    """The mean reading grade of the stories asked for each age group."""
    return {
        age: round(fmean(reading_grade(s) for r, s in zip(requests, stories) if r.age_group == age), 3)
        for age in AGE_GROUPS
        if any(r.age_group == age for r in requests)
    }


def in_age_order(grades: dict[str, float]) -> bool:
    """Whether every age group was asked for and the reading grade rises with it (3-5 < 6-8 < 9-12)."""
    return all(age in grades for age in AGE_GROUPS) and all(
        grades[younger] < grades[older] for younger, older in itertools.pairwise(AGE_GROUPS)
    )


def report(
    requests: Sequence[Request],
    conditioned: Sequence[str],
    unconditioned: Sequence[str],
    judges: dict[str, dict],
    themes: Sequence[str],
    resamples: int,
    seed: int,
) -> dict:
    """Every set of judges' figures under ``by_judge``; the ``best`` set's also at the top, with the reading
    grades by requested age group, conditioned and not."""
    stories = {"conditioned": conditioned, "unconditioned": unconditioned}
    by_judge = {name: figures(requests, stories, found, themes, resamples, seed) for name, found in judges.items()}
    best = by_judge["best"]
    grades = {name: grades_by_age(requests, texts) for name, texts in stories.items()}
    return {
        **{name: {**best[name], "reading_grade": grades[name]} for name in stories},
        **{key: best[key] for key in ("gain_points", "gain_ci_low", "gain_ci_high", "judges")},
        "by_judge": by_judge,
        "reading_grade_in_age_order": in_age_order(grades["conditioned"]),
        "bootstrap": {"resamples": resamples, "confidence": CONFIDENCE, "seed": seed, "unit": "request"},
        "stories": len(requests),
    }


def measure(
    writer,
    titles: Sequence[str],
    themes: Sequence[str],
    per_condition: int,
    seed: int,
    *,
    judges: dict[str, dict],
    screen,
    resamples: int,
) -> dict:
    """The grid written by ``writer`` with and without control tokens, judged; each conditioned story also
    screened for the age group it was asked for (``screen_pass_rate``)."""
    requests = grid(titles, themes, per_condition, seed)
    settings = [writer.defaults.but(seed=r.seed) for r in requests]
    conditioned = writer.write(
        [prompt(r.title, r.age_group, r.style, [r.theme]) for r in requests], settings, progress="control, conditioned"
    )
    plain = writer.write([prompt(r.title) for r in requests], settings, progress="control, unconditioned")
    written = [w.text for w in conditioned]
    result = report(requests, written, [w.text for w in plain], judges, themes, resamples, seed)
    result["stories_per_condition"] = per_condition
    result["screen_pass_rate"] = {
        age: round(fmean(screen.judge(text, age).safe for r, text in zip(requests, written) if r.age_group == age), 4)
        for age in AGE_GROUPS
    }
    return result
