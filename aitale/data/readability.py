"""Reading grade (Flesch-Kincaid), with syllables from pyphen's bundled hyphenation dictionary.

textstat's current releases fetch NLTK's CMU dictionary at run time, which these machines
cannot; pyphen ships its dictionaries, so the grade is computed offline and reproducibly.
"""

from __future__ import annotations

from functools import lru_cache

import pyphen

from aitale.data.text import sentences, words

_HYPHENATOR = pyphen.Pyphen(lang="en_US")


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
