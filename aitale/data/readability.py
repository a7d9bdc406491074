"""Reading grade (Flesch-Kincaid), with syllables from pyphen's bundled hyphenation dictionary.

textstat's current releases fetch NLTK's CMU dictionary at run time, which these machines
cannot; pyphen ships its dictionaries, so the grade is computed offline and reproducibly.
"""

from __future__ import annotations

from functools import lru_cache

import pyphen

from aitale.data.text import sentences, words

_HYPHENATOR = pyphen.Pyphen(lang="en_US")

# Flesch-Kincaid grade -> the youngest age group that reads at that level: the age group of a text without
# labels (the old books), and the control metric's age judge that learned nothing from any model.
GRADE_TO_AGE = ((3.0, "3-5"), (6.0, "6-8"))


@lru_cache(maxsize=65536)
def syllables(word: str) -> int:
    return len(_HYPHENATOR.positions(word.lower())) + 1


def reading_grade(text: str) -> float:
    """US school grade needed to read ``text``: 0.39 words/sentence + 11.8 syllables/word - 15.59."""
    found = words(text)
    if not found:
        return 0.0
    per_word = sum(syllables(w) for w in found) / len(found)
    return 0.39 * len(found) / max(1, len(sentences(text))) + 11.8 * per_word - 15.59


def age_group_for(text: str) -> str:
    """The age group ``text`` reads at, by :data:`GRADE_TO_AGE` (9-12 above its last grade)."""
    grade = reading_grade(text)
    return next((age for limit, age in GRADE_TO_AGE if grade < limit), "9-12")
