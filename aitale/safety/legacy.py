"""The keyword filter prepare used before the screen, kept only as the baseline ``metrics/safety.json`` compares with.

A rule was a list of terms (``*`` matching any ending) and a ceiling on matches per 1,000 words
of the whole story: "stable" matched ``stab*``, and one brutal paragraph in a long tale passed.
"""

from __future__ import annotations

import re

from aitale.data.text import word_count

# name: (terms, matches per 1,000 words above which a story was removed), as params.yaml had them
RULES: dict[str, tuple[tuple[str, ...], float]] = {
    "graphic_violence": (
        (
            "blood*",
            "bloody",
            "murder*",
            "slaughter*",
            "behead*",
            "corpse*",
            "butcher*",
            "stab*",
            "tortur*",
            "gore",
            "strangl*",
            "dismember*",
            "cut off his head",
            "cut off her head",
            "chopped off",
        ),
        1.5,
    ),
    "sexual_content": (
        ("lust*", "seduc*", "harlot*", "whore*", "adulter*", "rape", "raped", "brothel*", "concubine*"),
        0.5,
    ),
    "substances": (
        ("drunk*", "brandy", "whisky", "whiskey", "gin", "vodka", "tobacco", "opium", "intoxicat*", "liquor"),
        1.0,
    ),
    "slurs_and_profanity": (("damn*", "bastard*", "nigger*", "negro*", "savages", "heathen*"), 0.0),
}


def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = []
    for term in sorted(terms):
        body = r"\s+".join(re.escape(word) for word in term.rstrip("*").split())
        alternatives.append(body + (r"\w*" if term.endswith("*") else ""))
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


_PATTERNS = {name: _pattern(terms) for name, (terms, _) in RULES.items()}


def violations(text: str) -> list[str]:
    """The rules a text breaks, as the old filter judged it: 'rule: rate > ceiling (matches)'."""
    words = max(word_count(text), 1)
    found = []
    for name, pattern in _PATTERNS.items():
        matches = [m.group(0).lower() for m in pattern.finditer(text)]
        rate, ceiling = 1000 * len(matches) / words, RULES[name][1]
        if matches and rate > ceiling:
            found.append(f"{name}: {rate:.2f} per 1k words > {ceiling:g} ({', '.join(sorted(set(matches)))})")
    return found
