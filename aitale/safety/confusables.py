"""Letters that look like Latin ones are read as those letters before a text is judged ("dеad" with a Cyrillic е).

:func:`table` takes Unicode's confusables (as the pinned ``confusable-homoglyphs`` package ships them) at
build time: every non-ASCII character whose one ASCII-letter look-alike is known, mapped to it. :func:`fold`
then, with that table alone: NFKC (full-width and mathematical letters, ligatures), invisible format
characters dropped (zero-width spaces and joiners, soft hyphens), accents dropped, look-alikes mapped.
"""

from __future__ import annotations

import unicodedata


def table() -> dict[str, str]:
    """{character: its ASCII look-alike}, from the confusable-homoglyphs package (sorted)."""
    from confusable_homoglyphs.confusables import confusables_data

    found = {}
    for char, alikes in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        letters = sorted({a["c"] for a in alikes if len(a["c"]) == 1 and a["c"].isascii() and a["c"].isalpha()})
        if len(letters) == 1:
            found[char] = letters[0]
    return dict(sorted(found.items()))


def fold(text: str, alikes: dict[str, str]) -> str:
    """``text`` as the screen reads it; plain ASCII text comes back unchanged."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) not in ("Cf", "Mn"))
    return unicodedata.normalize("NFC", "".join(alikes.get(c, c) for c in text))
