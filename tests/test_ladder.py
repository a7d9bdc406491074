"""The quality ladder: its rungs, and every headline metric ranking them on 20 of the custom stories.

The custom stories were used to tune no metric (benchmarks/quality_ladder.py tunes on the reference books'
tales and reports on other library books); the full ladder, with the tau per story, is that benchmark's.
"""

import random
from collections import Counter

import pytest

from aitale.data.stories import load_stories
from aitale.data.text import WORD, paragraphs, sentences
from aitale.evaluation.ladder import GOAL, RUNGS, climb, rungs, tau
from aitale.evaluation.metrics import HEADLINE, screenless_metrics
from tests.support.repo import REPO

STORIES = [s.text for s in load_stories(REPO / "data/stories")]
STORY = STORIES[5]


def shape(text: str) -> list[list[int]]:
    """Words per sentence, paragraph by paragraph."""
    return [[len(WORD.findall(s)) for s in sentences(p)] for p in paragraphs(text)]


def test_rungs_are_seeded_copies_of_the_story_broken_step_by_step():
    ladder = rungs(STORY, 3)
    assert list(ladder) == list(RUNGS) and ladder["story"] == STORY
    assert rungs(STORY, 3) == ladder and rungs(STORY, 4) != ladder
    assert Counter(sentences(ladder["sentences_shuffled"])) == Counter(sentences(STORY))
    assert sentences(ladder["sentences_shuffled"]) != sentences(STORY)
    # each sentence keeps its own words (case aside) and its marks where they stood: every paragraph keeps its
    # words and ends as it did (a mark inside a sentence can end one where a name now follows it)
    for mine, theirs in zip(paragraphs(ladder["words_shuffled"]), paragraphs(STORY), strict=True):
        assert Counter(w.lower() for w in WORD.findall(mine)) == Counter(w.lower() for w in WORD.findall(theirs))
        assert mine[-1] == theirs[-1] and mine[0].isupper() == theirs[0].isupper()
    assert sentences(ladder["words_shuffled"]) != sentences(STORY)
    babble = ladder["babble"]
    assert shape(babble) == shape(STORY)  # the same sentence lengths in the same paragraphs
    story_words = {w.lower() for w in WORD.findall(STORY)}
    assert {w.lower() for w in WORD.findall(babble)} <= story_words
    assert Counter(w.lower() for w in WORD.findall(babble)) != Counter(w.lower() for w in WORD.findall(STORY))


def test_tau_is_kendalls_against_the_rungs_order():
    assert tau([4, 3, 2, 1]) == 1.0 and tau([1, 2, 3, 4]) == -1.0
    assert tau([1, 1, 1, 1]) == 0.0
    assert tau([3, 3, 1, 0]) == pytest.approx(5 / 30**0.5)  # a tie counts half (tau-b)
    from scipy.stats import kendalltau

    scores = [random.Random(i).random() for i in range(4)]
    assert tau(scores) == pytest.approx(kendalltau([4, 3, 2, 1], scores).statistic)


def test_every_headline_metric_ranks_the_ladder():
    report = climb(STORIES[:20], screenless_metrics(), seed=0)
    for name in HEADLINE:
        entry = report[name]
        assert entry["tau"] >= GOAL, (name, entry["tau"], entry["rung_means"])
        means = [entry["rung_means"][rung] for rung in RUNGS]
        assert means == sorted(means, reverse=True), (name, means)
        assert len(entry["story_taus"]) == 20


def test_model_rungs_are_ranked_by_their_mean_between_the_story_and_the_babble():
    fake = {"good": STORIES[20:23], "bad": [rungs(s, 9)["words_shuffled"] for s in STORIES[23:26]]}
    report = climb(STORIES[:3], {"grammar": screenless_metrics()["grammar"]}, seed=0, model_rungs=fake)
    entry = report["grammar"]
    assert set(entry["model_means"]) == {"good", "bad"}
    assert entry["model_means"]["good"] > entry["model_means"]["bad"]
    assert entry["model_order_tau"] > 0.5
