"""Age appropriateness: how suitable a text is for young readers, in [0, 1].

A reading-grade score 1 / (1 + exp((grade - 6) / 2)) of the Flesch-Kincaid grade (``reading_grade``; 0.5 at
grade 6) times a content score, 1 - the content screen's mean passage score for the age group
(``aitale.safety``: each passage's highest category score, 1 where a rule hits it). An easier text and
gentler content both raise it. Not a headline metric: no shuffle of a story's words changes its grade or its
content, so it cannot rank the quality ladder (``aitale.evaluation.metrics``).
"""

from __future__ import annotations

import math

from aitale.data.readability import reading_grade

_GRADE_MIDPOINT = 6.0  # reading grade scoring 0.5
_GRADE_SCALE = 2.0


def age_appropriateness(text: str, screen, age_group: str = "3-5") -> float:
    """Reading-grade score times the content screen's score, in [0, 1] (see the module docstring)."""
    grade_score = 1.0 / (1.0 + math.exp((reading_grade(text) - _GRADE_MIDPOINT) / _GRADE_SCALE))
    return grade_score * (1.0 - screen.judge(text, age_group).mean_score)
