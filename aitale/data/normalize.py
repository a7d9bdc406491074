"""Text normalisation shared by every source: one spelling of quotes, dashes and paragraphs.

Books and hand-written stories reach the tokenizer through ``normalize_text``, so the model
never learns two spellings of the same thing (curly vs straight quotes, an em dash vs
``--``, a hard-wrapped line vs an unwrapped one).
"""

from __future__ import annotations

import re
import unicodedata

# Applied after NFKC, which already turns no-break spaces, ligatures (ﬁ), full-width forms
# and the ellipsis character ("...") into plain characters but leaves quotes and dashes.
_CHARACTER_MAP = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u00ab": '"', "\u00bb": '"',
    # Gutenberg texts write a dash as "--"; the dash characters follow that convention.
    "\u2014": "--", "\u2013": "--", "\u2015": "--", "\u2012": "--", "\u2e3a": "--",
    # Ligatures NFKC keeps: spelled out so "Aesop" and "Æsop" are the same word.
    "\u00e6": "ae", "\u00c6": "Ae", "\u0153": "oe", "\u0152": "Oe",
    # Invisible characters: BOM, zero-width (non-)joiners and spaces, soft hyphen.
    "\ufeff": None, "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\u00ad": None,
    # Gutenberg marks italics as _word_; the underscores are markup, not text.
    "_": None,
})

_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")
_WHITESPACE = re.compile(r"\s+")
_DASH_RUN = re.compile(r"-{3,}")  # "----" (a long dash) reads the same as "--"


def normalize_text(text: str) -> str:
    """One canonical form: straight quotes, ``--`` dashes, one line per paragraph.

    Paragraphs (separated by blank lines in the input) are unwrapped onto a single line
    with single spaces and joined by exactly one blank line; the result has no leading or
    trailing whitespace. Verse and other line-broken text is unwrapped like prose.
    """
    text = unicodedata.normalize("NFKC", text).translate(_CHARACTER_MAP)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _DASH_RUN.sub("--", text)
    paragraphs = (_WHITESPACE.sub(" ", block).strip() for block in _BLANK_LINES.split(text))
    return "\n\n".join(p for p in paragraphs if p)

