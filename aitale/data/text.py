"""Paragraphs, sentences, words and passages of normalised text: the one splitter every part uses.

Texts are ``normalize_text`` output: one line per paragraph, paragraphs separated by one blank
line. The prepare stage (word counts, part markers), the reading grade, the narrative metrics,
the safety screen and the emotion labels all cut text here, so a "sentence" or a "word" means
the same thing everywhere.
"""

from __future__ import annotations

import re
from functools import lru_cache

# A word: letters, with inner apostrophes or hyphens ("don't", "well-known"); digits are not words.
WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
# A sentence ends at . ! or ? (and any closing quotes or brackets) before a capital, a digit or an opening quote.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[]*[A-Z0-9])")
_ABBREVIATIONS = frozenset({"mr", "mrs", "dr", "st", "mt", "messrs", "no"})

PASSAGE_SENTENCES = 4  # the longest passage: what a screen or a label judges as one unit


def unicode_text(text: str) -> str:
    """``text`` if it is Unicode text, else a ValueError: a lone surrogate (JSON's ``"\\ud800"``) is no
    character, cannot be written as UTF-8, and would fail every tokenizer and file after it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        at = err.start
        raise ValueError(
            f"holds a lone surrogate (U+{ord(text[at]):04X}) at character {at}: not Unicode text"
        ) from None
    return text


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph (a quotation of several sentences is split too)."""
    found, start = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        # "Mr. Fox" does not end a sentence
        if paragraph[match.start()] == "." and match.end() == match.start() + 1:
            before = WORD.findall(paragraph[max(start, match.start() - 12) : match.start()])
            if before and before[-1].lower() in _ABBREVIATIONS:
                continue
        found.append(paragraph[start : match.end()].strip())
        start = match.end()
    if paragraph[start:].strip():
        found.append(paragraph[start:].strip())
    return found


@lru_cache(maxsize=1024)
def sentences(text: str) -> tuple[str, ...]:
    """Every sentence of ``text``, paragraph by paragraph (cached: the metrics ask again and again)."""
    return tuple(s for p in paragraphs(text) for s in split_sentences(p))


def words(text: str) -> list[str]:
    """The words of ``text`` as written (see :data:`WORD`)."""
    return WORD.findall(text)


def word_count(text: str) -> int:
    return len(WORD.findall(text))


def passages(text: str, max_sentences: int = PASSAGE_SENTENCES) -> list[str]:
    """``text`` cut into passages of whole sentences, at most ``max_sentences`` each, never across a paragraph.

    A paragraph of up to ``max_sentences`` sentences is one passage; a longer one is cut into
    runs of equal size (7 sentences: 4 + 3), so no passage is a stray last sentence.
    """
    found = []
    for paragraph in paragraphs(text):
        sents = split_sentences(paragraph)
        pieces = -(-len(sents) // max_sentences)
        size = -(-len(sents) // pieces) if pieces else 0
        found += [" ".join(sents[i : i + size]) for i in range(0, len(sents), size or 1)]
    return found


def sentence_runs(text: str, size: int = PASSAGE_SENTENCES) -> list[str]:
    """``text`` as runs of ``size`` consecutive sentences (the last may be shorter), across paragraphs.

    Unlike :func:`passages`, a one-line paragraph of dialogue is judged with the sentences around it.
    """
    sents = sentences(text)
    return [" ".join(sents[i : i + size]) for i in range(0, len(sents), size)]
