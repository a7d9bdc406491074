"""Age appropriateness: how suitable a text is for young readers, in [0, 1]."""

from __future__ import annotations

import math

from aitale.data.readability import reading_grade

_GRADE_MIDPOINT = 6.0  # reading grade scoring 0.5
_GRADE_SCALE = 2.0


def age_appropriateness(text: str, screen, age_group: str = "3-5") -> float:
    """Reading-grade score times the content screen's score, in [0, 1] (see the module docstring)."""
    grade_score = 1.0 / (1.0 + math.exp((reading_grade(text) - _GRADE_MIDPOINT) / _GRADE_SCALE))
    return grade_score * (1.0 - screen.judge(text, age_group).mean_score)
