"""The story-structure tokens, declared once for prepare, the tokenizer, training and generation.

A structured story reads::

    <|title|>The Lantern Fox
    <|beginning|>First paragraphs...
    <|middle|>...
    <|ending|>Last paragraphs...<|endoftext|>

so that a prompt of ``<|title|>Some Title\\n<|beginning|>`` asks the model for a whole tale,
and the part markers teach it where stories turn and end.
"""

from __future__ import annotations

import re

TITLE = "<|title|>"
BEGINNING = "<|beginning|>"
MIDDLE = "<|middle|>"
ENDING = "<|ending|>"
END_OF_TEXT = "<|endoftext|>"  # GPT-2's own end-of-text token, so pretrained models already know it
SPECIAL_TOKENS = (TITLE, BEGINNING, MIDDLE, ENDING, END_OF_TEXT)

PART_SHARE = 0.2  # beginning and ending each take about a fifth of the words
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z])")


def prompt(title: str) -> str:
    """The text a model continues to tell a story called ``title``."""
    return f"{TITLE}{title}\n{BEGINNING}"


def structure(title: str, text: str) -> str:
    beginning, middle, ending = split_parts(text)
    return f"{prompt(title)}{beginning}\n{MIDDLE}{middle}\n{ENDING}{ending}{END_OF_TEXT}"


def split_parts(text: str) -> tuple[str, str, str]:
    """Beginning, middle and ending, cut at paragraph (or, for short texts, sentence) breaks."""
    units, joiner = text.split("\n\n"), "\n\n"
    if len(units) < 3:
        units, joiner = _SENTENCE_END.split(text), " "
    if len(units) < 3:
        return text, "", ""
    sizes = [len(unit.split()) for unit in units]
    quota = PART_SHARE * sum(sizes)
    first = _units_for(sizes, quota)
    last = _units_for(sizes[::-1], quota)
    first, last = min(first, len(units) - 2), min(last, len(units) - first - 1)
    return (
        joiner.join(units[:first]),
        joiner.join(units[first : len(units) - last]),
        joiner.join(units[len(units) - last :]),
    )


def _units_for(sizes: list[int], quota: float) -> int:
    """How many leading units it takes to reach ``quota`` words (at least one)."""
    total = 0
    for count, size in enumerate(sizes, start=1):
        total += size
        if total >= quota:
            return count
    return len(sizes)
