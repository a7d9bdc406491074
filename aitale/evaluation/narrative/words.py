"""What every story metric reads the same way: lower-cased words, stop words, a crude stem, quote marks,
and whether a sentence opens a story."""

from __future__ import annotations

import re
from functools import lru_cache

from aitale.data.text import WORD


@lru_cache(maxsize=1024)
def lower_words(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens."""
    return tuple(w.lower() for w in WORD.findall(text))


STOPWORDS = frozenset(
    """
a an the and or but if then so as of at by for from in into on onto to with without upon about above after again
against all am are was were be been being is it its itself i me my myself we our ours us you your yours he him his
himself she her hers herself they them their theirs themselves this that these those there here what which who whom
whose when where why how not no nor only own same than too very can will would shall should could may might must do
does did done doing have has had having just now up down out off over under once more most other some such any each
few both said say says saying one two also ever even yet still let o oh ah well thus thee thou thy thine ye unto hath
doth
""".split()
)


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


# A first word that continues something said before: a story does not open with it.
ANAPHORIC_START = frozenset(
    "he she they his her its their him them this these those then so but and again thus therefore still yet also "
    "however afterwards meanwhile".split()
)
# A first sentence that introduces: an indefinite article, "there was", "once", a number.
INTRODUCES = re.compile(r"\b(?:a|an|once|there (?:was|were|lived|is|are|once)|one|two|three|some|long ago)\b", re.I)
QUOTE = re.compile(r"\"|(?<![A-Za-z])'(?=[A-Za-z])|(?<=[.,!?;:\-])'(?![A-Za-z])")


def opening(sentence: str) -> float:
    words = lower_words(sentence)
    continues = bool(words) and words[0] in ANAPHORIC_START
    return 0.5 * (not continues) + 0.5 * bool(INTRODUCES.search(sentence))
