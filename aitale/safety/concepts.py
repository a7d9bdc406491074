"""Concept lexicons expanded through WordNet, and who does what to whom: features beyond the words themselves.

:func:`expand` turns ``data/safety/concepts.yaml`` (concepts as WordNet synsets) into word lists once,
when the screen is built; :class:`Concepts` then needs no WordNet. For a passage it adds, beside the
classifier's lemmas, ``c:<concept>`` for every word of a concept ("cleaver" -> ``c:weapon``) and, for a
verb followed within a few words (same clause) by someone or something acted on,
``r:<verb>><object>`` and ``r:<verb concept>><object>`` ("held her stepdaughter's head beneath" ->
``r:hold>body``; "cut herself" -> ``r:cut>self``): a light, dependency-free reading of a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aitale.errors import SourceError
from aitale.safety.lemmas import Token

OBJECTS = ("child", "person", "animal", "body")  # concepts that name who or what is acted on
PRONOUNS = {"her": "person", "him": "person", "them": "person", "me": "person", "us": "person", "you": "person"}
REFLEXIVE = ("myself", "herself", "himself", "themselves", "yourself", "itself", "ourselves")
_WINDOW = 4  # words after a verb in which its object is looked for
_CLAUSE_END = re.compile(r"[.;:!?]")


def expand(wordnet, spec: dict) -> dict[str, list[str]]:
    """{concept: sorted one-word lemmas} from a spec {"senses": n, "concepts": {name: [synset or domain:synset]}}."""
    senses = spec.get("senses", 3)
    found: dict[str, set[str]] = {}
    unknown = []
    for name, roots in sorted(spec["concepts"].items()):
        words = found.setdefault(name, set())
        for root in roots:
            domain = root.startswith("domain:")
            try:
                synset = wordnet.synset(root.removeprefix("domain:"))
            except Exception:  # nltk raises WordNetError or ValueError for a name it does not know
                unknown.append(f"{name}: {root}")
                continue
            members = synset.in_usage_domains() if domain else [synset]
            for member in list(members):
                members += member.closure(lambda s: s.hyponyms())
            words |= {w for s in members for w in _common_words(wordnet, s, senses)}
    if unknown:
        raise SourceError("concepts name synsets WordNet 3.0 does not have: " + ", ".join(unknown))
    return {name: sorted(words) for name, words in found.items()}


def _common_words(wordnet, synset, senses: int) -> list[str]:
    """The synset's one-word lemmas for which it is among their ``senses`` commonest senses in its part of speech."""
    out = []
    for lemma in synset.lemmas():
        word = lemma.name().lower()
        if "_" in word or not word.isalpha():
            continue
        ranked = wordnet.synsets(word, pos=synset.pos())
        if synset in ranked[:senses] or (synset.pos() == "s" and synset in wordnet.synsets(word, pos="a")[:senses]):
            out.append(word)
    return out


class Concepts:
    def __init__(self, lexicon: dict[str, list[str]]):
        self.lexicon = lexicon
        self._of: dict[str, tuple[str, ...]] = {}
        for name in sorted(lexicon):
            for word in lexicon[name]:
                self._of[word] = (*self._of.get(word, ()), name)

    def of(self, token: Token) -> tuple[str, ...]:
        """The concepts a word belongs to, through any of its forms, sorted."""
        if token.word in REFLEXIVE:
            return ("self",)
        if token.word in PRONOUNS:
            return (PRONOUNS[token.word],)
        return tuple(sorted({c for form in token.forms for c in self._of.get(form, ())}))

    def features(self, text: str, words: Sequence[Token]) -> list[str]:
        """``c:`` and ``r:`` features of a passage's words (in order of the words)."""
        kinds = [self.of(t) for t in words]
        out = [f"c:{c}" for found in kinds for c in found if c not in ("self",)]
        for i, token in enumerate(words):
            if token.verb is None:
                continue
            acts = [c for c in kinds[i] if c not in OBJECTS]
            for j in range(i + 1, min(i + 1 + _WINDOW, len(words))):
                if _CLAUSE_END.search(text, words[j - 1].end, words[j].start):
                    break
                objects = [c for c in kinds[j] if c in (*OBJECTS, "self")]
                for obj in objects:
                    out += [f"r:{token.verb}>{obj}", *(f"r:{act}>{obj}" for act in acts)]
                if objects:
                    break
        return out
