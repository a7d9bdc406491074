"""What came before, kept only as baselines ``metrics/safety.json`` compares with: the keyword filter prepare used
before the screen, and the screen before this one (:func:`old_screen`).

A keyword rule was a list of terms (``*`` matching any ending) and a ceiling on matches per 1,000 words
of the whole story: "stable" matched ``stab*``, and one brutal paragraph in a long tale passed.
"""

from __future__ import annotations

import re

from aitale.data.text import word_count

# The screen before this one: rules and a lemma classifier with these thresholds (params.yaml had them), fitted on
# the first labelled set's train part; it had no ``unsafe`` head, no concepts, letter runs or look-alike letters.
OLD_THRESHOLDS = {
    "3-5": dict.fromkeys(("violence", "sexual", "substances", "profanity_slurs", "self_harm", "frightening"), 0.5),
    "6-8": {"violence": 0.6, "sexual": 0.5, "substances": 0.5, "profanity_slurs": 0.6, "self_harm": 0.5,
            "frightening": 0.6},
    "9-12": {"violence": 0.7, "sexual": 0.5, "substances": 0.6, "profanity_slurs": 0.7, "self_harm": 0.5,
             "frightening": 0.7},
}  # fmt: skip

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


def old_screen(train, lexicon: dict, params):
    """The screen before this one, refitted as it was: rules, lemmas and lemma pairs, fixed thresholds."""
    from aitale.safety.classifier import UNSAFE, Featurizer, fit
    from aitale.safety.rules import Rules
    from aitale.safety.screen import Screen

    featurizer = Featurizer(["pairs"], None, None)
    *_, fitted = fit(train, featurizer, regularization=params.regularization, min_df=params.min_df, seed=params.seed)
    thresholds = {a: {UNSAFE: 2.0, **limits} for a, limits in OLD_THRESHOLDS.items()}
    return Screen(Rules(lexicon), fitted, thresholds, params.passage_sentences, categories_fail=True)
