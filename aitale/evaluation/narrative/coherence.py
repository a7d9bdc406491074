"""Coherence: how well the sentences of a story hang together, in [0, 1]; half of it is grammar.

``measure`` is a weighted mean of four parts. Lexical cohesion (weight 3): ``neighbour_share`` over each
sentence's content-word stems and pronoun classes (he, she, they, it, I, you, we), 0.5 when neighbours share
no more than any two sentences. Given before new (0.5): of the words met both as "a X" and "the X", the share
whose indefinite use comes first. Opening (1): the first sentence introduces ("a", "there was", "once", a
number) and does not continue ("He", "Then", "But"). Dialogue (1): the share of quote marks that open a
quotation where none is open or close an open one, so a quotation cut apart or left dangling counts against it.
"""

from __future__ import annotations

from aitale.data.text import WORD, paragraphs, sentences
from aitale.evaluation.grammar import with_grammar
from aitale.evaluation.narrative.words import QUOTE, STOPWORDS, given_before_new, neighbour_share, opening, stem

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


def coherence(text: str) -> float:
    """Narrative coherence in [0, 1]: half how the sentences hang together (``measure``), half grammar."""
    return with_grammar(measure(text), text)


def measure(text: str) -> float:
    """How the sentences hang together, in [0, 1] (the module docstring's four parts); 0 without a sentence."""
    sents = sentences(text)
    if not sents:
        return 0.0
    parts = (
        3.0 * neighbour_share([_units(s) for s in sents]),
        0.5 * given_before_new(text),
        1.0 * opening(sents[0]),
        1.0 * _dialogue(text),
    )
    return sum(parts) / 5.5


def _units(sentence: str) -> set[str]:
    units = set()
    for word in (w.lower() for w in WORD.findall(sentence)):
        if word in _PRONOUN_CLASS:
            units.add(_PRONOUN_CLASS[word])
        elif word not in STOPWORDS and len(word) > 1:
            units.add(stem(word))
    return units


def _dialogue(text: str) -> float:
    """Share of quote marks that open a quotation where none is open or close an open one."""
    errors = marks = 0
    for paragraph in paragraphs(text):
        open_quote = {'"': False, "'": False}
        for match in QUOTE.finditer(paragraph):
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
