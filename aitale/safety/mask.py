"""The second line of defence: the words an age group's policy never allows cannot be written at all.

:func:`policy_words` lists, for an age group, every word and plain phrase of the screen's rules that
counts against it (a rule listed for older readers, or under ``never``), each word in all its
inflections. :class:`TokenMask` turns them into the tokens that may not come next, from a model's
token texts: a token that is such a word by itself (" murder", "Murder"), or the last piece of one
spelled in pieces (" mur" + "der": "der" is banned right after " mur"). Whichever way a model splits
the word, its last piece is banned where it would complete it, so the word is never written. The
generation core applies the mask to the next-token scores (:func:`aitale.generation.sampling.masked`),
in the PyTorch and ONNX decoders alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from lemminflect import getAllInflections

from aitale.safety.rules import Rules


def policy_words(rules: Rules, age_group: str) -> list[str]:
    """The words and phrases (no ``*``) the rules never allow for ``age_group``, inflected, sorted."""
    words = set()
    for term in rules.terms_for(age_group):
        parts = term.lower().split()
        if "*" in parts:
            continue
        if len(parts) == 1:
            words |= {parts[0], *(f for forms in getAllInflections(parts[0]).values() for f in forms)}
        else:
            words.add(" ".join(parts))
    return sorted(w.lower() for w in words)


class TokenMask:
    """Tokens that may not come next after given ids, for a model whose token ``i`` reads as ``texts[i]``."""

    def __init__(self, texts: Sequence[str], words: Sequence[str]):
        self.texts = list(texts)
        variants = {s + v for w in words for v in {w, w.capitalize(), w.upper()} for s in ("", " ")}
        by_text: dict[str, list[int]] = {}
        for i, text in enumerate(self.texts):
            by_text.setdefault(text, []).append(i)
        self.spaced = np.zeros(len(texts), dtype=bool)  # " murder": banned everywhere
        self.bare = np.zeros(len(texts), dtype=bool)  # "murder": banned where a word starts
        self.after: dict[str, np.ndarray] = {}  # text just written -> ids that would complete a word
        for v in sorted(variants):
            for i in by_text.get(v, ()):
                (self.spaced if v.startswith(" ") else self.bare)[i] = True
            for cut in range(1, len(v)):
                if ids := by_text.get(v[cut:]):
                    self.after[v[:cut]] = np.union1d(self.after.get(v[:cut], []), ids).astype(np.int64)
        self.longest = max(map(len, self.after), default=0)

    def banned(self, ids: Sequence[int]) -> np.ndarray:
        """One flag per token id: True where the token may not follow ``ids``."""
        tail, start = "", len(ids)
        while start > 0 and len(tail) <= self.longest:
            start -= 1
            tail = self.texts[ids[start]] + tail
        out = self.spaced.copy()
        if not tail or not tail[-1].isalpha():
            out |= self.bare
        # every way the tail, from a token boundary, is the start of a word: ban the pieces that would end it
        edge = len(tail)
        for i in range(len(ids) - 1, start - 1, -1):
            edge -= len(self.texts[ids[i]])
            piece = tail[edge:]
            if piece in self.after and (piece[0] == " " or edge == 0 or not tail[edge - 1].isalpha()):
                out[self.after[piece]] = True
        return out


def token_texts(tokenizer) -> list[str]:
    """Each token id's text for a ``tokenizers.Tokenizer`` (special tokens read as nothing)."""
    return [tokenizer.decode([i], skip_special_tokens=True) for i in range(tokenizer.get_vocab_size())]


class AgeMasks:
    """One :class:`TokenMask` per age group for a model's tokens and a screen's rules, built when first asked
    for (tell, the server): the mask of a request's age group goes with its row into the generation core."""

    def __init__(self, texts: Sequence[str], rules: Rules):
        self.texts, self.rules, self._built = list(texts), rules, {}

    def for_age(self, age_group: str) -> TokenMask:
        if age_group not in self._built:
            self._built[age_group] = TokenMask(self.texts, policy_words(self.rules, age_group))
        return self._built[age_group]
