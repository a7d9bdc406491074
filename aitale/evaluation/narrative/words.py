"""What every story metric reads the same way: lower-cased words, stop words, a crude stem, quote marks,
and whether a sentence opens a story."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

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


def neighbour_share(units: Sequence[set[str]]) -> float:
    """How much more neighbouring sentences share than any two do, in [0, 1] (0.5: no more than chance).

    ``units`` holds what each sentence mentions. Each sentence is a TF-IDF vector over its units (idf
    within the story); the mean cosine of neighbours (distance 1, and 2 at half weight) as a share of
    itself plus the mean cosine of all pairs, which does not depend on the sentences' order.
    """
    n = len(units)
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, found in enumerate(units):
        for unit in sorted(found):
            rows.append(i)
            cols.append(vocab.setdefault(unit, len(vocab)))
    if n < 3 or not vocab:
        return 0.5
    x = np.zeros((n, len(vocab)))
    x[rows, cols] = 1.0
    x *= np.log((n + 1) / x.sum(0))[None, :]
    norms = np.linalg.norm(x, axis=1)
    x /= np.where(norms > 0, norms, 1.0)[:, None]
    total = x.sum(0)
    any_pair = (total @ total - (x * x).sum()) / (n * (n - 1))
    local = ((x[:-1] * x[1:]).sum(1).mean() + 0.5 * (x[:-2] * x[2:]).sum(1).mean()) / 1.5
    return float(local / (local + any_pair)) if local + any_pair > 0 else 0.5


def given_before_new(text: str, min_mentions: int = 1) -> float:
    """Of the words met both as "a X" and "the X" (and ``min_mentions`` times or more in all), the share whose
    indefinite use comes first: introduced before being referred back to. 0.5 when there are none."""
    words = lower_words(text)
    counts = Counter(stem(w) for w in words) if min_mentions > 1 else None
    first: dict[str, dict[str, int]] = {}
    for i in range(1, len(words)):
        article, word = words[i - 1], stem(words[i])
        if article in ("a", "an", "the") and words[i] not in STOPWORDS and (not counts or counts[word] >= min_mentions):
            first.setdefault(word, {}).setdefault("the" if article == "the" else "a", i)
    both = [uses for uses in first.values() if len(uses) == 2]
    return sum(uses["a"] < uses["the"] for uses in both) / len(both) if both else 0.5
