"""The control metric's arithmetic: the paired bootstrap interval of a gain, and the reading-grade order."""

import numpy as np
import pytest
from scipy.stats import bootstrap

from aitale.evaluation import control


def gain(conditioned, unconditioned, axis=-1):
    return np.mean(conditioned, axis=axis) - np.mean(unconditioned, axis=axis)


@pytest.mark.parametrize("seed", [0, 20042])
def test_the_gain_interval_is_scipys_paired_percentile_bootstrap(seed):
    """36 requests, each a conditioned and an unconditioned story judged right (1) or wrong (0)."""
    draws = np.random.default_rng(seed + 1)
    conditioned = (draws.random(36) < 0.6).astype(float)
    unconditioned = (draws.random(36) < 0.35).astype(float)
    low, high = control.gain_interval(conditioned, unconditioned, 2000, seed)
    expected = bootstrap(
        (conditioned, unconditioned),
        gain,
        paired=True,
        vectorized=True,
        n_resamples=2000,
        method="percentile",
        confidence_level=0.95,
        rng=np.random.default_rng(seed),
    ).confidence_interval
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert low < gain(conditioned, unconditioned) < high


def test_the_gain_interval_worked_out_by_hand():
    # Two requests: the first gained a match with its control tokens, the second did not change. A resample
    # draws both requests again: the mean gain is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4, so of 2,000
    # resamples about 500 give 0 and 500 give 1: the 2.5th and 97.5th percentiles are 0 and 1.
    assert control.gain_interval(np.array([1.0, 1.0]), np.array([0.0, 1.0]), 2000, seed=3) == (0.0, 1.0)
    # Every request gained: no resample says otherwise.
    assert control.gain_interval(np.ones(5), np.zeros(5), 2000, seed=3) == (1.0, 1.0)


def test_pairing_narrows_the_interval_where_a_request_s_two_stories_go_together():
    """Requests both of whose stories match, or both miss, carry no gain and no noise: resampled as pairs, only
    the requests that changed move the interval; unpaired, the 30 always-right and 30 never-right would."""
    conditioned = np.array([1.0] * 30 + [0.0] * 30 + [1.0] * 6)
    unconditioned = np.array([1.0] * 30 + [0.0] * 30 + [0.0] * 6)
    low, high = control.gain_interval(conditioned, unconditioned, 2000, seed=0)
    draws = np.random.default_rng(0)
    unpaired = [
        gain(conditioned[draws.integers(0, 66, 66)], unconditioned[draws.integers(0, 66, 66)]) for _ in range(2000)
    ]
    assert low >= 0 and high - low < np.subtract(*np.quantile(unpaired, [0.975, 0.025]))


def test_the_same_seed_gives_the_same_interval():
    conditioned, unconditioned = np.array([1, 0, 1, 1, 0, 1.0]), np.array([0, 0, 1, 0, 1, 0.0])
    first = control.gain_interval(conditioned, unconditioned, 500, seed=11)
    assert control.gain_interval(conditioned, unconditioned, 500, seed=11) == first


def test_reading_grades_in_age_order_only_when_they_rise_with_the_age_asked_for():
    easy = "The cat sat. The dog ran. We had fun."
    middle = "The little fox walked slowly through the quiet forest, looking for his mother before night."
    hard = (
        "Notwithstanding considerable apprehension, the adventurous travellers deliberately ventured "
        "across the treacherous, unexplored mountains, contemplating extraordinary possibilities."
    )
    requests = [control.Request("T", age, "fable", "kindness", 0) for age in ("3-5", "6-8", "9-12")]
    rising = control.grades_by_age(requests, [easy, middle, hard])
    assert rising["3-5"] < rising["6-8"] < rising["9-12"] and control.in_age_order(rising)
    assert not control.in_age_order(control.grades_by_age(requests, [hard, middle, easy]))
    assert not control.in_age_order(control.grades_by_age(requests[:2], [easy, middle]))  # 9-12 never asked for
    assert control.GradeJudge().labels([easy, hard]) == ["3-5", "9-12"]
