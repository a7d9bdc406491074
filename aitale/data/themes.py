"""Themes for stories that come without them (the books), predicted where a judge is confident.

The judge learns from the custom stories, whose themes the team wrote: a TF-IDF logistic regression
per theme (one against the rest). Trained on 64 modern stories, its probabilities on old books stay
near 0.5 (measured: none reaches 0.6 for most themes), so confidence is relative: a book story gets a
theme where it ranks in the top ``share`` of the book stories for that theme, at most ``most`` themes,
and is marked ``themes_source: "predicted"``; the others keep ``"none"``. Deterministic: liblinear with
a fixed seed, themes in sorted order, ties broken by position.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from aitale.data.records import Story


def tag_themes(stories: Sequence[Story], share: float, min_stories: int, most: int, seed: int) -> Counter:
    """Fill in the themes of every story without given themes, in place; how many got each theme.

    A story gets at most ``most`` themes, the likeliest; themes of fewer than ``min_stories`` taught stories
    are not predicted (too few to learn from)."""
    taught = [s for s in stories if s.themes_source == "given"]
    untagged = [s for s in stories if s.themes_source == "none"]
    counts = Counter(t for s in taught for t in s.themes)
    themes = sorted(t for t, n in counts.items() if n >= min_stories and n < len(taught))
    if not untagged or not themes:
        return Counter()
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english")
    features = vectorizer.fit_transform([s.text for s in taught])
    unseen = vectorizer.transform([s.text for s in untagged])
    probabilities = np.column_stack([
        LogisticRegression(solver="liblinear", class_weight="balanced", random_state=seed)
        .fit(features, [theme in s.themes for s in taught])
        .predict_proba(unseen)[:, 1]
        for theme in themes
    ])  # fmt: skip
    # a theme's cut: the score its top `share` of stories reach (stable sort: ties go to the earlier story)
    ranks = np.argsort(np.argsort(-probabilities, axis=0, kind="stable"), axis=0, kind="stable")
    chosen = ranks < max(1, int(share * len(untagged)))
    given = Counter()
    for story, row, keep in zip(untagged, probabilities, chosen):
        likeliest = sorted((p, theme) for theme, p, k in zip(themes, row, keep) if k)[::-1][:most]
        story.themes = sorted((theme for _, theme in likeliest), key=themes.index)
        story.themes_source = "predicted" if story.themes else "none"
        given.update(story.themes)
    return given
