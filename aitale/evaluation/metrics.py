"""The story metrics a run reports, by name: one list for evaluate, the judge, the quality ladder and the ratings.

The headline metrics are those that rank the quality ladder (``aitale.evaluation.ladder``: a story above its
shuffled sentences, above its words shuffled inside each sentence, above babble from its words) with a mean
Kendall tau of 0.8 or more on tales they were not tuned on (``benchmarks/results/quality_ladder.json``). Two
are reported beside them. ``age_appropriateness`` scores reading grade and content, which no shuffle of a
story's own words changes, so it cannot rank the ladder: it is a limit a story must keep, not a measure of how
good it is. ``character_consistency`` must notice a character renamed partway (by how long each name stays in
the story), and babble, which scatters every name over the whole story, passes that cue: it falls short of
the goal on the tales it was not tuned on.
"""

from __future__ import annotations

from collections.abc import Callable

from aitale.evaluation.grammar import grammaticality
from aitale.evaluation.narrative.age import age_appropriateness
from aitale.evaluation.narrative.arc import arc_consistency
from aitale.evaluation.narrative.characters import character_consistency
from aitale.evaluation.narrative.coherence import coherence
from aitale.evaluation.narrative.creativity import creativity

HEADLINE = ("coherence", "arc_consistency", "creativity", "grammar")
BESIDE = ("character_consistency", "age_appropriateness")
DEFAULT_AGE_GROUP = "3-5"  # the youngest readers: what a story is judged for when no age group is given

Metric = Callable[[str], float]


def story_metrics(screen, age_group: str = DEFAULT_AGE_GROUP) -> dict[str, Metric]:
    """Every story metric by name, headline first; ``screen`` (the content screen) judges age-appropriateness."""
    return {
        "coherence": coherence,
        "arc_consistency": arc_consistency,
        "creativity": creativity,
        "grammar": grammaticality,
        "character_consistency": character_consistency,
        "age_appropriateness": lambda text: age_appropriateness(text, screen, age_group),
    }


def screenless_metrics() -> dict[str, Metric]:
    """Every story metric but age-appropriateness, which needs the content screen."""
    return {name: metric for name, metric in story_metrics(None).items() if name != "age_appropriateness"}


def judge(text: str, screen, age_group: str = DEFAULT_AGE_GROUP) -> dict[str, float]:
    """Every story metric of ``text``, rounded as the metrics files hold them."""
    return {name: round(metric(text), 4) for name, metric in story_metrics(screen, age_group).items()}
