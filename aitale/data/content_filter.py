"""Content rules for children: documented in the README, configured in ``prepare.filter``.

A rule is a list of terms (words or phrases, ``*`` matching any ending) and a ceiling on
how many matches per 1,000 words a story may contain. Old fairy tales mention a wolf
eating a grandmother; the ceilings let a passing mention through and remove the stories
that dwell on it. The evaluation stage reuses the same rules to score generated text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from aitale.data.normalize import word_count
from aitale.params import FilterRule


@dataclass(frozen=True)
class Violation:
    rule: str
    per_1k_words: float
    limit: float
    matches: dict[str, int]

    def __str__(self) -> str:
        found = ", ".join(f"{term} x{n}" for term, n in sorted(self.matches.items()))
        return f"{self.rule}: {self.per_1k_words:.2f} per 1k words > {self.limit:g} ({found})"


class ContentFilter:
    def __init__(self, rules: dict[str, FilterRule]):
        self.rules = rules
        self._patterns = {name: _pattern(rule.terms) for name, rule in rules.items()}

    def matches(self, text: str) -> dict[str, Counter[str]]:
        """Matched terms per rule, lower-cased."""
        return {name: Counter(m.group(0).lower() for m in pattern.finditer(text))
                for name, pattern in self._patterns.items()}

    def violations(self, text: str) -> list[Violation]:
        words = max(word_count(text), 1)
        found = []
        for name, counts in self.matches(text).items():
            rate = 1000 * sum(counts.values()) / words
            limit = self.rules[name].max_per_1k_words
            if counts and rate > limit:
                found.append(Violation(name, rate, limit, dict(counts)))
        return found


def _pattern(terms: list[str]) -> re.Pattern[str]:
    alternatives = []
    for term in sorted(terms):
        body = r"\s+".join(re.escape(word) for word in term.rstrip("*").split())
        alternatives.append(body + (r"\w*" if term.endswith("*") else ""))
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)
