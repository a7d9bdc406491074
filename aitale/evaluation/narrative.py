"""Narrative metrics for one story (``text -> float``, higher is better) and for a set of stories.

Texts are paragraphs separated by a blank line (``normalize_text`` output). Every metric is
lexical and offline (the sentiment lexicon is VADER's, shipped inside ``vaderSentiment``):
all five on the ~300 stories of a test split take a few seconds. ``corruptions.validate``
checks each metric by how often it scores a real story above a copy broken in the one way
the metric is meant to notice (``tests/test_narrative.py`` holds the rates on real stories).

coherence
    How well the sentences hang together, in [0, 1]: a weighted mean of four parts.
    Lexical cohesion (weight 3): the TF-IDF cosine of neighbouring sentences (distance 1,
    and 2 at half weight) over content-word stems and pronoun classes (he, she, they, it,
    I, you, we), as a share of itself plus the mean cosine of all sentence pairs, which does
    not depend on their order (0.5: neighbours share no more than any two sentences).
    Given before new (0.5): of the words met both as "a X" and "the X", the share whose
    indefinite use comes first. Opening (1): the first sentence introduces ("a", "there
    was", "once", a number) and does not continue ("He", "Then", "But"). Dialogue (1): the
    share of quote marks that open a quotation where none is open or close an open one, so
    a quotation cut apart or left dangling counts against it.

arc_consistency
    How closely the story follows the fairy-tale arc, a settled opening, trouble in the middle
    and a resolved ending, in (-1, 1): (opening + closing + 0.5 * valence arc) / 2.5.
    Opening: where the first sentence ranks among all the story's sentences (1 above all, -1
    below all, ties half) by the marks of a tale's first sentence it has: it does not go on
    from before (no "He", "Then" or "But" first), it introduces ("a", "there was", a
    number), it holds an opening formula ("once", "long ago", "a certain", "there lived"),
    it is narration rather than dialogue, its first word is "a", "an", "once", "there" or
    "long", it brings in with "a" someone the story names three times or more, and it has
    no he/she/they in its first six words. Closing: the same rank for the last sentence
    by the marks of a last sentence: a closing formula ("happily", "ever after", "to this
    day", "never again", "asleep"), timeless narration (no past-tense verb outside dialogue:
    a moral, or a present-tense ending), and a full stop or exclamation rather than a
    question, colon or dash that leads on. Valence arc: each word gets its VADER valence
    (flipped and damped after a negation); the middle is the words from 30% to 70%.
    Resolution: the mean valence of the last 15% of the words minus that of the middle;
    payoff: the emotional intensity (mean absolute valence) of the last two sentences minus
    that of the middle; both divided by the story's mean absolute valence. Settled opening:
    the share of words of a world at rest ("once", "upon", "ago", "lived", "every", "happy",
    "peace", "home") in the first 10% of the words minus their share in the middle, divided
    by 0.03. The valence arc is tanh((resolution + payoff + 2 * settled opening) / 2), each
    part squashed by tanh first. A story of one sentence scores 0. Valence alone preferred
    the real story to its half-swapped copy only 61% of the time on the reference books: a
    classic tale's halves hardly differ in lexicon sentiment, and a fable ends on a stern
    moral. The cues and weights were compared on the seven corpus books the tests do not use
    (94% there); the tests' reference books reach 96% and the custom stories 95%.
    ``sentiment_arc`` is the per-segment valence behind the valence arc.

character_consistency
    Whether the named characters are mentioned consistently through the story, in [0, 1].
    Names are capitalised words used as names ("Puff", "Grandma Nell", "the Wolf" of a
    fable); a run of them counts under its last word. A weighted mean of persistence
    (weight 2), the mention-weighted span from each character's first to last mention as a
    share of the story; evenness (1), how evenly each one's mentions fall across the
    story's thirds; gender agreement (1), in narration naming one character, the he/she
    pronouns that follow agree for that character (|he - she| / (votes + 1), so more
    agreeing evidence scores higher); and identity (2), each character's neighbouring words
    (title, the words before and after, pronoun gender, nearby content words) are more like
    the same character's on the other side of a split (at a third, half and two thirds) than
    like another character's. A story without a named character scores 0.5.

age_appropriateness
    How suitable the text is for young readers, in [0, 1]: a reading-grade score
    1 / (1 + exp((grade - 6) / 2)) of the Flesch-Kincaid grade (``reading_grade``; 0.5 at
    grade 6) times a content score, 1 - the content screen's mean passage score for ages 3-5
    (``aitale.safety``: each passage's highest category score, 1 where a rule hits it). An
    easier text and gentler content both raise it.

creativity
    Varied rather than repetitive language, in [0, 1]: the mean of distinct-1, -2 and -3
    (unique over all n-grams) over every window of 100 consecutive n-grams (a moving
    average, so a long story is not penalised for its length), times 1 - ``repetition_rate``
    (seq-rep-4: the share of word 4-grams repeating an earlier one anywhere in the text,
    which loops and copied passages raise). ``distinct_n`` is the plain whole-text ratio.
    ``self_bleu`` scores a set of stories: the mean sacrebleu BLEU (0-100) of each against
    all the others as references, lower meaning a more diverse set.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from aitale.data.readability import reading_grade
from aitale.data.text import WORD, paragraphs, sentences, split_sentences

# --- Text -----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _words(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens."""
    return tuple(w.lower() for w in WORD.findall(text))


_STOPWORDS = frozenset(
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
def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


# --- Coherence ------------------------------------------------------------------------------

# Pronouns stand for the entity they refer to: "she" in two sentences is a shared entity.
_PRONOUN_CLASS = {
    "he": "@he",
    "him": "@he",
    "his": "@he",
    "himself": "@he",
    "she": "@she",
    "her": "@she",
    "hers": "@she",
    "herself": "@she",
    "they": "@they",
    "them": "@they",
    "their": "@they",
    "themselves": "@they",
    "it": "@it",
    "its": "@it",
    "i": "@i",
    "me": "@i",
    "my": "@i",
    "myself": "@i",
    "you": "@you",
    "your": "@you",
    "yours": "@you",
    "we": "@we",
    "us": "@we",
    "our": "@we",
}
# A first word that continues something said before: a story does not open with it.
_ANAPHORIC_START = frozenset(
    "he she they his her its their him them this these those then so but and again thus therefore still yet also "
    "however afterwards meanwhile".split()
)
# A first sentence that introduces: an indefinite article, "there was", "once", a number.
_INTRODUCES = re.compile(r"\b(?:a|an|once|there (?:was|were|lived|is|are|once)|one|two|three|some|long ago)\b", re.I)
_QUOTE = re.compile(r"\"|(?<![A-Za-z])'(?=[A-Za-z])|(?<=[.,!?;:\-])'(?![A-Za-z])")


def coherence(text: str) -> float:
    """Narrative coherence in [0, 1] (see the module docstring)."""
    sents = sentences(text)
    if not sents:
        return 0.0
    parts = (3.0 * _cohesion(sents), 0.5 * _given_before_new(text), 1.0 * _opening(sents[0]), 1.0 * _dialogue(text))
    return sum(parts) / 5.5


def _units(sentence: str) -> set[str]:
    units = set()
    for word in (w.lower() for w in WORD.findall(sentence)):
        if word in _PRONOUN_CLASS:
            units.add(_PRONOUN_CLASS[word])
        elif word not in _STOPWORDS and len(word) > 1:
            units.add(_stem(word))
    return units


def _cohesion(sents: Sequence[str]) -> float:
    """Neighbour similarity as a share of neighbour + any-pair similarity (0.5: no better than chance)."""
    n = len(sents)
    if n < 3:
        return 0.5
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, sentence in enumerate(sents):
        for unit in _units(sentence):
            rows.append(i)
            cols.append(vocab.setdefault(unit, len(vocab)))
    if not vocab:
        return 0.5
    x = np.zeros((n, len(vocab)))
    x[rows, cols] = 1.0
    x *= np.log((n + 1) / x.sum(0))[None, :]  # idf within the story
    norms = np.linalg.norm(x, axis=1)
    x /= np.where(norms > 0, norms, 1.0)[:, None]
    total = x.sum(0)
    any_pair = (total @ total - (x * x).sum()) / (n * (n - 1))
    local = ((x[:-1] * x[1:]).sum(1).mean() + 0.5 * (x[:-2] * x[2:]).sum(1).mean()) / 1.5
    return float(local / (local + any_pair)) if local + any_pair > 0 else 0.5


def _given_before_new(text: str) -> float:
    """Share of words met both as "a X" and "the X" whose indefinite use comes first; 0.5 when none."""
    words = _words(text)
    first: dict[str, dict[str, int]] = {}
    for i in range(1, len(words)):
        article = words[i - 1]
        if article in ("a", "an", "the") and words[i] not in _STOPWORDS:
            first.setdefault(_stem(words[i]), {}).setdefault("the" if article == "the" else "a", i)
    both = [uses for uses in first.values() if len(uses) == 2]
    if not both:
        return 0.5
    return sum(uses["a"] < uses["the"] for uses in both) / len(both)


def _opening(sentence: str) -> float:
    words = _words(sentence)
    continues = bool(words) and words[0] in _ANAPHORIC_START
    return 0.5 * (not continues) + 0.5 * bool(_INTRODUCES.search(sentence))


def _dialogue(text: str) -> float:
    """Share of quote marks that open a quotation where none is open or close an open one."""
    errors = marks = 0
    for paragraph in paragraphs(text):
        open_quote = {'"': False, "'": False}
        for match in _QUOTE.finditer(paragraph):
            mark, i = match.group(0), match.start()
            marks += 1
            before = paragraph[i - 1] if i else " "
            opening = before.isspace() or before in "([-"
            if opening and not open_quote[mark]:
                open_quote[mark] = True
            elif not opening and open_quote[mark]:
                open_quote[mark] = False
            else:
                errors += 1
    return 1.0 - errors / marks if marks else 1.0


# --- Emotional arc --------------------------------------------------------------------------

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
    words = _words(text)
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
    """Fit to the fairy-tale arc, in (-1, 1): it opens like a tale, closes like one, and its valence follows.

    See the module docstring: (opening + closing + 0.5 * valence arc) / 2.5.
    """
    sents = sentences(text)
    if len(sents) < 2:
        return 0.0
    counts = Counter(_stem(w) for w in _words(text))
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
    words = _words(sentence)
    if not words:
        return 0
    quoted = _QUOTE.search(sentence)
    introduces_main = any(words[i - 1] in ("a", "an") and counts[_stem(words[i])] >= 3 for i in range(1, len(words)))
    return (
        2 * _opening(sentence)
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
    words = _words(sentence)
    past = any(w in _PAST or (w.endswith("ed") and len(w) > 4) for w in words)
    return sum(
        (
            bool(_CLOSING_FORMULA.search(sentence)),
            bool(words) and not past and not _QUOTE.search(sentence),  # a moral, or a present-tense ending
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
    settled = np.fromiter((w in _SETTLED for w in _words(text)), dtype=float, count=n)
    opening = (settled[: max(1, int(n * _ARC_OPENING))].mean() - settled[low:high].mean()) / _SETTLED_SCALE
    parts = math.tanh(resolution) + math.tanh(payoff) + 2 * math.tanh(opening)
    return float(math.tanh(parts / 2))


def _closing_words(text: str, fallback: int) -> int:
    """Words in the story's last two sentences (``fallback`` when it has fewer than three)."""
    sents = sentences(text)
    if len(sents) < 3:
        return fallback
    return max(1, len(WORD.findall(sents[-2])) + len(WORD.findall(sents[-1])))


# --- Characters -----------------------------------------------------------------------------

# Capitalised words that are not names: function words, interjections, calendar words, forms of address.
_NOT_NAMES = frozenset(
    """
I The A An And But Then So He She It They We You His Her Its Their Our Your My This That These Those There When What
Where Why How Who Whom Which If Now Oh O Ah Alas Yes No Not Once One Two Three Four Five Mr Mrs Miss Sir Madam Mister
St God Heaven Heavens Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June
July August September October November December Christmas Well Pray Do Let Come Go See Look Here Nay Ay Hie Good
Thank Please Dear Hush Hurrah Hello Goodbye Ha Ho Oho Aha Hm Hmm Mamma Papa Mother Father Sister Brother Granny
""".split()
)
_MALE = frozenset({"he", "him", "his", "himself"})
_FEMALE = frozenset({"she", "her", "hers", "herself"})


@dataclass(frozen=True)
class Mention:
    sentence: int
    token: int  # index of the name's last word in the sentence's tokens
    name: str  # that last word: "Nell" for "Grandma Nell"


@dataclass(frozen=True)
class Characters:
    tokens: tuple[tuple[str, ...], ...]  # per sentence, possessive "'s" removed
    quoted: tuple[tuple[bool, ...], ...]  # per sentence and token: inside a quotation
    names: frozenset[str]
    mentions: tuple[Mention, ...]

    def counts(self) -> Counter[str]:
        return Counter(m.name for m in self.mentions)


def _strip_possessive(word: str) -> str:
    return word[:-2] if word.endswith("'s") else word[:-1] if word.endswith("s'") else word


def _quoted_tokens(text: str) -> tuple[list[tuple[str, ...]], list[tuple[bool, ...]]]:
    """Tokens of each sentence, and whether each stands inside a quotation (tracked through a paragraph)."""
    tokens, quoted = [], []
    for paragraph in paragraphs(text):
        inside = {'"': False, "'": False}
        for sentence in split_sentences(paragraph):
            marks = [(m.start(), m.group(0)) for m in _QUOTE.finditer(sentence)]
            if not marks:
                words = tuple(_strip_possessive(w) for w in WORD.findall(sentence))
                tokens.append(words)
                quoted.append((inside['"'] or inside["'"],) * len(words))
                continue
            words, flags, k = [], [], 0
            for match in WORD.finditer(sentence):
                while k < len(marks) and marks[k][0] < match.start():
                    _toggle(inside, sentence, *marks[k])
                    k += 1
                words.append(_strip_possessive(match.group(0)))
                flags.append(inside['"'] or inside["'"])
            for mark in marks[k:]:
                _toggle(inside, sentence, *mark)
            tokens.append(tuple(words))
            quoted.append(tuple(flags))
    return tokens, quoted


def _toggle(inside: dict[str, bool], sentence: str, at: int, mark: str) -> None:
    """A quote mark after a space (or at the start) opens a quotation; one after a word closes it."""
    inside[mark] = at == 0 or sentence[at - 1].isspace() or sentence[at - 1] in "([-"


@lru_cache(maxsize=1024)
def characters(text: str) -> Characters:
    """The named characters and their mentions.

    A name is a capitalised word seen inside a sentence more often than in lower case
    ("Wolf" in a fable that always writes "the Wolf"), not a function word or interjection.
    A run of names ("Grandma Nell", "King Log") is one mention of its last word.
    """
    tokens, quoted = _quoted_tokens(text)
    capitalised, lower = Counter(), Counter()
    for sentence in tokens:
        for j, word in enumerate(sentence):
            if word[0].islower():
                lower[word.lower()] += 1
            elif j > 0 and not (word.isupper() and len(word) > 1):
                capitalised[word] += 1
    names = frozenset(
        w
        for w, k in capitalised.items()
        if k > lower[w.lower()] and len(w) > 1 and w not in _NOT_NAMES and w.split("'")[0] not in _NOT_NAMES
    )
    mentions = []
    for i, sentence in enumerate(tokens):
        j = 0
        while j < len(sentence):
            if sentence[j] in names:
                while j + 1 < len(sentence) and sentence[j + 1] in names:
                    j += 1
                mentions.append(Mention(i, j, sentence[j]))
            j += 1
    return Characters(tuple(tokens), tuple(quoted), names, tuple(mentions))


def character_consistency(text: str) -> float:
    """Named characters mentioned consistently through the story, in [0, 1] (see the module docstring)."""
    cast = characters(text)
    if not cast.mentions:
        return 0.5
    spread, evenness = _persistence(cast)
    parts = (2 * spread, evenness, _gender_agreement(cast), 2 * (1 + _identity(cast)) / 2)
    return float(sum(parts) / 6)


def _persistence(cast: Characters) -> tuple[float, float]:
    """(mention-weighted span of each name, mention-weighted evenness over the story's thirds)."""
    offsets = np.cumsum([0] + [len(s) for s in cast.tokens])
    total_tokens = max(1, int(offsets[-1]))
    positions: dict[str, list[float]] = defaultdict(list)
    for m in cast.mentions:
        positions[m.name].append((offsets[m.sentence] + m.token) / total_tokens)
    span = evenness = 0.0
    for where in positions.values():
        span += len(where) * (where[-1] - where[0])
        thirds = np.bincount(np.minimum((np.array(where) * 3).astype(int), 2), minlength=3)
        evenness += float(np.minimum(thirds, len(where) / 3).sum())
    return span / len(cast.mentions), evenness / len(cast.mentions)


def _gender_agreement(cast: Characters) -> float:
    """In narration naming one character: do the he/she pronouns after it agree for that character?

    A sentence votes when it names one character outside quotation marks (a name inside a
    quotation is often the one spoken to) and the narration after the name, with the next
    sentence if that names nobody, has he-words or she-words but not both. Per character
    |he votes - she votes| / (votes + 1): agreement, discounted when there is little
    evidence of it; 0.5 when no sentence votes.
    """
    by_sentence: dict[int, list[Mention]] = defaultdict(list)
    for m in cast.mentions:
        by_sentence[m.sentence].append(m)
    votes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i, found in by_sentence.items():
        narrated = [m for m in found if not cast.quoted[i][m.token]]
        if len({m.name for m in found}) != 1 or not narrated:
            continue
        following = [
            w.lower()
            for w, q in zip(cast.tokens[i][narrated[0].token + 1 :], cast.quoted[i][narrated[0].token + 1 :])
            if not q
        ]
        if i + 1 < len(cast.tokens) and i + 1 not in by_sentence:
            following += [w.lower() for w, q in zip(cast.tokens[i + 1], cast.quoted[i + 1]) if not q]
        male = any(w in _MALE for w in following)
        female = any(w in _FEMALE for w in following)
        if male != female:
            votes[found[0].name][0 if male else 1] += 1
    if not votes:
        return 0.5
    return sum(abs(a - b) for a, b in votes.values()) / sum(a + b + 1 for a, b in votes.values())


def _identity(cast: Characters, window: int = 3) -> float:
    """Own-minus-other similarity of the characters' context profiles across a split, in [-1, 1].

    A split with fewer than two characters mentioned on both sides of it counts 0.
    """
    features = []
    for m in cast.mentions:
        sentence = cast.tokens[m.sentence]
        start = m.token
        while start > 0 and sentence[start - 1] in cast.names:
            start -= 1
        found = [f"title:{w}" for w in sentence[start : m.token]]
        if start > 0:
            found.append(f"before:{sentence[start - 1].lower()}")
        if m.token + 1 < len(sentence):
            found.append(f"after:{sentence[m.token + 1].lower()}")
        for word in sentence[m.token + 1 : m.token + 9]:
            lowered = word.lower()
            if lowered in _MALE or lowered in _FEMALE:
                found.append("gender:" + ("he" if lowered in _MALE else "she"))
                break
        for word in sentence[max(0, start - window) : start] + sentence[m.token + 1 : m.token + 1 + window]:
            lowered = word.lower()
            if lowered not in _STOPWORDS and word not in cast.names and len(lowered) > 2:
                found.append(f"word:{_stem(lowered)}")
        features.append((m.sentence, m.name, found))
    n = len(cast.tokens)
    scores = []
    for split in (n / 3, n / 2, 2 * n / 3):
        profiles: dict[str, tuple[Counter, Counter]] = defaultdict(lambda: (Counter(), Counter()))
        for sentence, name, found in features:
            profiles[name][0 if sentence < split else 1].update(found)
        both = [name for name, (early, late) in profiles.items() if early and late]
        if len(both) < 2:
            scores.append(0.0)
            continue
        own = np.mean([_cosine(profiles[a][0], profiles[a][1]) for a in both])
        other = np.mean([_cosine(profiles[a][0], profiles[b][1]) for a in both for b in both if a != b])
        scores.append(float(own - other))
    return float(np.mean(scores))


def _cosine(a: Counter, b: Counter) -> float:
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


# --- Age appropriateness --------------------------------------------------------------------

_GRADE_MIDPOINT = 6.0  # reading grade scoring 0.5
_GRADE_SCALE = 2.0


def age_appropriateness(text: str, screen, age_group: str = "3-5") -> float:
    """Reading-grade score times the content screen's score, in [0, 1] (see the module docstring)."""
    grade_score = 1.0 / (1.0 + math.exp((reading_grade(text) - _GRADE_MIDPOINT) / _GRADE_SCALE))
    return grade_score * (1.0 - screen.judge(text, age_group).mean_score)


# --- Creativity and diversity ---------------------------------------------------------------

_WINDOW = 100  # n-grams per moving window for the length-robust distinct-n of ``creativity``
_REPEAT_NGRAM = 4  # seq-rep-4 (Welleck et al., 2019)


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(text: str, n: int) -> float:
    """Unique word n-grams over all word n-grams of ``text`` (lower-cased); 0 when it has none."""
    grams = _ngrams(_words(text), n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(text: str) -> float:
    """Share of word 4-grams that repeat an earlier 4-gram of the text (seq-rep-4); 0 when it has none."""
    grams = _ngrams(_words(text), _REPEAT_NGRAM)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def creativity(text: str) -> float:
    """Moving-window distinct-1/2/3 times (1 - repetition rate), in [0, 1] (see the module docstring)."""
    words = _words(text)
    if not words:
        return 0.0
    ids = _word_ids(words)
    variety = [_moving_distinct(_ngram_ids(ids, n), _WINDOW) for n in (1, 2, 3) if len(words) >= n]
    return float(np.mean(variety)) * (1.0 - repetition_rate(text))


def _word_ids(words: Sequence[str]) -> np.ndarray:
    vocab: dict[str, int] = {}
    return np.array([vocab.setdefault(w, len(vocab)) for w in words], dtype=np.int64)


def _ngram_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """One integer per n-gram: equal n-grams get equal numbers."""
    grams = ids[: len(ids) - n + 1].copy()
    for k in range(1, n):  # renumbered after each step so that the numbers stay small
        pairs = grams * (int(ids.max()) + 1) + ids[k : len(ids) - n + 1 + k]
        grams = np.unique(pairs, return_inverse=True)[1]
    return grams


def _moving_distinct(grams: np.ndarray, window: int) -> float:
    """Mean unique share over every run of ``window`` consecutive n-grams (the whole list when shorter).

    Position i adds one unique n-gram to each window starting after the previous occurrence of
    its n-gram, so the sum over windows is counted per position instead of per window.
    """
    n = len(grams)
    if n <= window:
        return len(np.unique(grams)) / n
    order = np.argsort(grams, kind="stable")
    previous = np.full(n, -1)
    same = grams[order[1:]] == grams[order[:-1]]
    previous[order[1:][same]] = order[:-1][same]
    position = np.arange(n)
    first = np.maximum(np.maximum(position - window + 1, previous + 1), 0)
    last = np.minimum(position, n - window)
    return float(np.clip(last - first + 1, 0, None).sum() / ((n - window + 1) * window))


def self_bleu(texts: Sequence[str]) -> float:
    """Mean BLEU (sacrebleu, 0-100) of each text against all the others; lower means a more diverse set.

    The same statistics as ``sacrebleu.sentence_bleu(text, others)`` (13a tokens, exp
    smoothing, effective order, closest reference length), counted once for the whole set
    (per n-gram, the highest count in any text and the runner-up) instead of re-counting the
    references for every text, so a few hundred stories take about a second.
    """
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    count = len(texts)
    if count < 2:
        return 0.0
    tokenize = Tokenizer13a()
    tokens = [tokenize(t.strip()).split() for t in texts]
    lengths = [len(t) for t in tokens]
    vocab: dict[str, int] = {}
    words = np.array([vocab.setdefault(w, len(vocab)) for t in tokens for w in t], dtype=np.int64)
    owner = np.repeat(np.arange(count), lengths)
    position = np.concatenate([np.arange(n) for n in lengths]) if words.size else np.zeros(0, dtype=np.int64)
    correct = np.zeros((count, 4))
    total = np.zeros((count, 4))
    grams = words
    for order in range(1, 5):
        if order > 1:  # extend each (order-1)-gram by the next word, renumbered to stay small
            ends = np.flatnonzero(position >= order - 1)  # n-grams are stored at their last word
            pairs = grams[ends - 1] * (len(vocab) + 1) + words[ends]
            grams = np.full(len(words), -1, dtype=np.int64)
            grams[ends] = np.unique(pairs, return_inverse=True)[1]
        valid = grams >= 0 if order > 1 else np.ones(len(grams), dtype=bool)
        keys, counts = np.unique(grams[valid] * count + owner[valid], return_counts=True)
        if not keys.size:
            continue
        gram_of, text_of = keys // count, keys % count
        # per n-gram: the highest count, the text holding it, and the second-highest count
        ranked = np.lexsort((-counts, gram_of))
        first = np.r_[True, gram_of[ranked][1:] != gram_of[ranked][:-1]]
        top_rows = ranked[first]
        second_rows = ranked[1:][~first[1:]]  # includes third and later; keep the first per n-gram
        second_rows = (
            second_rows[np.r_[True, gram_of[second_rows][1:] != gram_of[second_rows][:-1]]]
            if second_rows.size
            else second_rows
        )
        size = int(gram_of.max()) + 1
        top_count, top_text, second = np.zeros(size, np.int64), np.full(size, -1), np.zeros(size, np.int64)
        top_count[gram_of[top_rows]] = counts[top_rows]
        top_text[gram_of[top_rows]] = text_of[top_rows]
        second[gram_of[second_rows]] = counts[second_rows]
        tops, holders, seconds = top_count[gram_of], top_text[gram_of], second[gram_of]
        available = np.where(holders == text_of, seconds, tops)
        np.add.at(correct[:, order - 1], text_of, np.minimum(counts, available))
        np.add.at(total[:, order - 1], text_of, counts)
    scores = []
    for index, length in enumerate(lengths):
        others = lengths[:index] + lengths[index + 1 :]
        ref_len = min(others, key=lambda r: (abs(r - length), r))
        scores.append(
            BLEU.compute_bleu(
                correct[index].astype(int).tolist(),
                total[index].astype(int).tolist(),
                length,
                ref_len,
                smooth_method="exp",
                effective_order=True,
            ).score
        )
    return float(np.mean(scores))
