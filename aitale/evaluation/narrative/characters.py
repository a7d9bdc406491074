"""Character consistency: whether a story's characters are introduced, kept on stage and told apart, in [0, 1];
half of it is grammar.

Names are capitalised words used as names ("Puff", "Grandma Nell", "the Wolf" of a fable); a run of them
counts under its last word. ``measure`` is a weighted mean of: continuity (2), ``neighbour_share`` over each
sentence's names, recurring roles ("the fox", met as "the X" three times or more) and he/she/they of the
narration, so a character in one sentence is in the next ones too; introduction (1), of the recurring nouns
met as "a X" and "the X", the share introduced before being referred back to; and, with a named character,
persistence (2), the mention-weighted span from each name's first to last mention as a share of the story;
gender agreement (1), in narration naming one character, the he/she pronouns that follow agree for that
character (|he - she| / (votes + 1)); and identity (3), each character's neighbouring words (title, the words
before and after, pronoun gender, nearby content words) are more like the same character's on the other side
of a split (at a third, half and two thirds) than like another character's. Persistence and identity notice
a name swapped partway (``swap_names``); continuity and introduction notice sentences out of order.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aitale.data.text import WORD, paragraphs, split_sentences
from aitale.evaluation.grammar import with_grammar
from aitale.evaluation.narrative.words import QUOTE, STOPWORDS, given_before_new, neighbour_share, stem

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
_PRONOUN_OF = (
    dict.fromkeys(_MALE, "@he")
    | dict.fromkeys(_FEMALE, "@she")
    | dict.fromkeys(("they", "them", "their", "themselves"), "@they")
)
_ROLE_MENTIONS = 3  # a noun met this often is one of the story's recurring people or things


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
            marks = [(m.start(), m.group(0)) for m in QUOTE.finditer(sentence)]
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
    """Characters introduced, kept on stage and told apart (``measure``), half of it; the other half grammar."""
    return with_grammar(measure(text), text)


def measure(text: str) -> float:
    """The weighted mean of the module docstring's parts, in [0, 1]; the last three only with a named character."""
    cast = characters(text)
    parts = [(2.0, _continuity(cast)), (1.0, given_before_new(text, _ROLE_MENTIONS))]
    if cast.mentions:
        span, _ = _persistence(cast)
        parts += [(2.0, span), (1.0, _gender_agreement(cast)), (3.0, (1 + _identity(cast)) / 2)]
    return sum(weight * value for weight, value in parts) / sum(weight for weight, _ in parts)


def _continuity(cast: Characters) -> float:
    """Whether the characters in one sentence are in the next ones too (``neighbour_share`` over each sentence's
    names, recurring roles ("the fox") and he/she/they of the narration)."""
    roles = _roles(cast.tokens)
    units: list[set[str]] = [set() for _ in cast.tokens]
    for m in cast.mentions:
        units[m.sentence].add(m.name)
    for i, (sentence, quoted) in enumerate(zip(cast.tokens, cast.quoted)):
        for j, word in enumerate(sentence):
            lowered = word.lower()
            if quoted[j]:
                continue
            if lowered in _PRONOUN_OF:
                units[i].add(_PRONOUN_OF[lowered])
            elif j and sentence[j - 1].lower() == "the" and stem(lowered) in roles:
                units[i].add("role:" + stem(lowered))
    return neighbour_share(units)


def _roles(tokens: tuple[tuple[str, ...], ...]) -> frozenset[str]:
    """Lower-case nouns met as "the X" three times or more: the fox, the king, the old woman's "woman"."""
    counts: Counter[str] = Counter()
    for sentence in tokens:
        for before, word in zip(sentence, sentence[1:]):
            if before.lower() == "the" and word[:1].islower() and word not in STOPWORDS and len(word) > 2:
                counts[stem(word)] += 1
    return frozenset(word for word, k in counts.items() if k >= _ROLE_MENTIONS)


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
            if lowered not in STOPWORDS and word not in cast.names and len(lowered) > 2:
                found.append(f"word:{stem(lowered)}")
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
