"""Words of a text with every dictionary form they may stand for: "stabbed" is "stab", "stables" is "stable".

Lemmas come from lemminflect's own tables (shipped in its wheel), so a rule written as "stab"
matches "stabs", "stabbed" and "stabbing" but never "stable", and an unknown word ("Lustig")
is only itself. Words are cut by :func:`aitale.data.text.words`, as everywhere else.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from lemminflect import getAllLemmas

from aitale.data.text import WORD

# Which lemma stands for a word as a classifier feature when it has several ("drunk": drunk, drink)
_FEATURE_ORDER = ("VERB", "NOUN", "ADJ", "ADV", "AUX", "PROPN")


class Token(NamedTuple):  # a tuple: made once per word of every passage screened, so it must be cheap to build
    word: str  # lower-cased, as written
    forms: frozenset[str]  # the word and every lemma of it
    feature: str  # the one form the classifier counts
    verb: str | None  # the verb lemma, where the word may be a verb
    start: int  # character offsets in the text
    end: int


@lru_cache(maxsize=65536)
def _forms(word: str) -> tuple[frozenset[str], str, str | None]:
    lemmas = getAllLemmas(word)
    forms = {word, *(lemma for found in lemmas.values() for lemma in found)}
    forms |= {w for w in word.split("-") if w} if "-" in word else set()
    feature = next((lemmas[pos][0] for pos in _FEATURE_ORDER if lemmas.get(pos)), word)
    verb = lemmas["VERB"][0].lower() if lemmas.get("VERB") else None
    return frozenset(f.lower() for f in forms), feature.lower(), verb


@lru_cache(maxsize=4096)
def tokens(text: str) -> tuple[Token, ...]:
    """The words of ``text`` with their forms; cached, since the classifier and the rules both read a passage's."""
    found = []
    for match in WORD.finditer(text):
        word = match.group(0).lower()
        word = word[:-2] if word.endswith("'s") else word  # the wolf's -> wolf
        forms, feature, verb = _forms(word)
        found.append(Token(word, forms, feature, verb, match.start(), match.end()))
    return tuple(found)


def features(text: str) -> list[str]:
    """The classifier's words: one lemma per word."""
    return [t.feature for t in tokens(text)]
