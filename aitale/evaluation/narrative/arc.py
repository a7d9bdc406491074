"""Arc consistency: how closely a story follows the fairy-tale arc, in [0, 1]; half of it is grammar.

``fit`` in (-1, 1) is (opening + closing + 0.5 * valence arc) / 2.5; ``measure`` maps it to [0, 1].
Opening: where the first sentence ranks among all the story's sentences (1 above all, -1 below all, ties
half) by the marks of a tale's first sentence: it does not go on from before, it introduces, it holds an
opening formula ("once", "long ago", "there lived"), it is narration, its first word is "a", "an", "once",
"there" or "long", it brings in with "a" someone named three times or more, and no he/she/they stands in its
first six words. Closing: the same rank for the last sentence by the marks of a last sentence: a closing
formula ("happily", "ever after", "to this day", "asleep"), timeless narration (no past tense outside
dialogue: a moral, or a present-tense ending), and a full stop or exclamation rather than a question, colon
or dash. Valence arc: each word's VADER valence (flipped and damped after a negation); resolution (the last
15% of the words against the middle 30-70%), payoff (the emotional intensity of the last two sentences
against the middle) and a settled opening (words of a world at rest, "once", "lived", "happy", "home", in
the first 10% against the middle), each tanh-squashed: tanh((resolution + payoff + 2 * opening) / 2). A
classic tale's halves hardly differ in lexicon sentiment, so the valence arc has half weight.
``sentiment_arc`` is the per-segment valence behind it (the evaluate stage's arc plot).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import cache, lru_cache

import numpy as np

from aitale.data.text import WORD, sentences
from aitale.evaluation.grammar import with_grammar
from aitale.evaluation.narrative.words import QUOTE, lower_words, opening, stem

_NEGATIONS = frozenset(
    "not no never nor none nobody nothing neither without cannot can't don't didn't won't wouldn't couldn't isn't "
    "wasn't weren't shouldn't hasn't haven't hadn't doesn't ain't".split()
)
_NEGATION_SCALE = -0.74  # VADER's N_SCALAR
_VALENCE_MAX = 4.0  # VADER valences are in [-4, 4]


@cache
def _lexicon() -> dict[str, float]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer().lexicon


@lru_cache(maxsize=1024)
def _valences(text: str) -> np.ndarray:
    """Per-word valence in [-1, 1], 0 for words outside the lexicon; flipped after a negation."""
    lexicon = _lexicon()
    words = lower_words(text)
    values = np.zeros(len(words))
    for i, word in enumerate(words):
        value = lexicon.get(word)
        if value:
            if any(w in _NEGATIONS for w in words[max(0, i - 3) : i]):
                value *= _NEGATION_SCALE
            values[i] = value / _VALENCE_MAX
    values.setflags(write=False)
    return values


def sentiment_arc(text: str, segments: int = 10) -> list[float]:
    """Mean word valence (VADER lexicon, in [-1, 1]) in each of ``segments`` equal slices of the words."""
    values = _valences(text)
    edges = np.linspace(0, len(values), segments + 1).astype(int)
    return [float(values[a:b].mean()) if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])]


# Words of a settled world, the equilibrium a fairy tale opens on before the trouble: the storytelling
# formulas of a world at rest ("once upon a time", "long ago", "there lived", "used to", "every day", "for
# years") and words of contentment and safety ("happy", "peace", "safe", "home", "together").
_SETTLED = frozenset(
    """
once upon ago lived live lives dwelt reigned happily happy happiness ever peace peaceful peacefully content
contented safe safely home rest married wedding joy rejoiced together always years used every
""".split()
)
_ARC_MIDDLE = (0.3, 0.7)  # the middle of the story, where the trouble is, as shares of its words
_ARC_ENDING = 0.15  # the ending: the last 15% of the words
_ARC_OPENING = 0.10  # the opening: the first 10% of the words
_SETTLED_SCALE = 0.03  # settled words 3 points more common in the opening than in the middle: tanh(1)
_VALENCE_WEIGHT = 0.5  # of the valence arc, against 1 each for the opening and the closing sentence

# The formulas a tale opens and closes on, and the past tense of narration (which a moral or a
# present-tense ending lacks): a handful of common irregular verbs and regular -ed forms.
_OPENING_FORMULA = re.compile(
    r"\b(?:once|long ago|long before|a certain|there (?:was|were|lived|dwelt|stood|reigned)|"
    r"(?:lived|dwelt|reigned) (?:a|an|once)|in (?:olden|old|former) (?:days|times))\b",
    re.I,
)
_CLOSING_FORMULA = re.compile(
    r"\b(?:ever after|happily|to this (?:very )?day|at this (?:very )?day|ever since|from that (?:day|time|hour)|"
    r"after that|all (?:their|his|her) (?:lives|life|days)|(?:for|in) (?:many|all the) years|never again|"
    r"no (?:longer|more)|once more|for ever|forever|the end|till|until|lived|married|reigned|asleep)\b",
    re.I,
)
_PAST = frozenset("was were had did said went came saw took made got gave told thought knew found ran".split())
_OPENING_WORDS = frozenset(("a", "an", "once", "there", "long"))
_THIRD_PERSON = frozenset("he she they him her them his its their it".split())


def arc_consistency(text: str) -> float:
    """Fit to the fairy-tale arc, in [0, 1]: half the fit (``measure``), half grammar."""
    return with_grammar(measure(text), text)


def measure(text: str) -> float:
    """The fit to the arc, (``fit`` + 1) / 2, in [0, 1]: 0.5 for a story of one sentence."""
    return (fit(text) + 1) / 2


def fit(text: str) -> float:
    """(opening + closing + 0.5 * valence arc) / 2.5, in (-1, 1); 0 for a story of one sentence."""
    sents = sentences(text)
    if len(sents) < 2:
        return 0.0
    counts = Counter(stem(w) for w in lower_words(text))
    opening = _rank([_opening_cues(s, counts) for s in sents], 0)
    closing = _rank([_closing_cues(s) for s in sents], len(sents) - 1)
    return float((opening + closing + _VALENCE_WEIGHT * _valence_arc(text)) / (2 + _VALENCE_WEIGHT))


def _rank(values: list[float], i: int) -> float:
    """Where ``values[i]`` stands among the others, in [-1, 1] (1: above all of them; ties count half)."""
    others = values[:i] + values[i + 1 :]
    below = sum(v < values[i] for v in others) + 0.5 * sum(v == values[i] for v in others)
    return 2 * below / len(others) - 1


def _opening_cues(sentence: str, counts: Counter[str]) -> float:
    """How many marks of a tale's first sentence this one has (0-7)."""
    words = lower_words(sentence)
    if not words:
        return 0
    quoted = QUOTE.search(sentence)
    introduces_main = any(words[i - 1] in ("a", "an") and counts[stem(words[i])] >= 3 for i in range(1, len(words)))
    return (
        2 * opening(sentence)
        + sum(
            (  # 2 * _opening: does not go on from before, and introduces
                bool(_OPENING_FORMULA.search(sentence)),
                not quoted,  # narration, not dialogue
                words[0] in _OPENING_WORDS,
                introduces_main,  # "a X" for an X the story keeps returning to
                not _THIRD_PERSON.intersection(words[:6]),  # nobody yet to refer back to
            )
        )
    )


def _closing_cues(sentence: str) -> int:
    """How many marks of a tale's last sentence this one has (0-3)."""
    words = lower_words(sentence)
    past = any(w in _PAST or (w.endswith("ed") and len(w) > 4) for w in words)
    return sum(
        (
            bool(_CLOSING_FORMULA.search(sentence)),
            bool(words) and not past and not QUOTE.search(sentence),  # a moral, or a present-tense ending
            sentence.rstrip("\"') ").endswith((".", "!")),  # not a question, colon or dash that leads on
        )
    )


def _valence_arc(text: str) -> float:
    """tanh((resolution + payoff + 2 * settled opening) / 2), each part tanh-squashed; 0 without sentiment words."""
    values = _valences(text)
    n = len(values)
    scale = float(np.abs(values).mean()) if n else 0.0
    if n < 4 or scale == 0:
        return 0.0
    low, high = int(n * _ARC_MIDDLE[0]), max(int(n * _ARC_MIDDLE[1]), int(n * _ARC_MIDDLE[0]) + 1)
    middle = values[low:high]
    ending = values[min(n - 1, int(n * (1 - _ARC_ENDING))) :]
    resolution = (ending.mean() - middle.mean()) / scale
    closing = values[n - _closing_words(text, len(ending)) :]
    payoff = (np.abs(closing).mean() - np.abs(middle).mean()) / scale
    settled = np.fromiter((w in _SETTLED for w in lower_words(text)), dtype=float, count=n)
    opening = (settled[: max(1, int(n * _ARC_OPENING))].mean() - settled[low:high].mean()) / _SETTLED_SCALE
    parts = math.tanh(resolution) + math.tanh(payoff) + 2 * math.tanh(opening)
    return float(math.tanh(parts / 2))


def _closing_words(text: str, fallback: int) -> int:
    """Words in the story's last two sentences (``fallback`` when it has fewer than three)."""
    sents = sentences(text)
    if len(sents) < 3:
        return fallback
    return max(1, len(WORD.findall(sents[-2])) + len(WORD.findall(sents[-1])))
