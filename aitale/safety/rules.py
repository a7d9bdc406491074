"""Whole-word and phrase rules: each names a category and the youngest age group it is harmless for.

A lexicon (``data/safety/rules.yaml``) lists, per category, terms under the age group from which
they may appear (``6-8``, ``9-12``) or under ``never``. A term is one or more lemmas; ``*`` in a
phrase stands for up to three words ("cut off * head"). Words of an ``exceptions`` phrase
("killer whale", "kill time") are not matched by any rule. A hit counts against every age group
younger than the one it is listed under.
"""

from __future__ import annotations

from dataclasses import dataclass

from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES
from aitale.safety.lemmas import Token, tokens

NEVER = "never"
LEVELS = (*AGE_GROUPS[1:], NEVER)  # where a term may be listed: the youngest group it is harmless for
_GAP = 3  # words a phrase's "*" may stand for


@dataclass(frozen=True)
class Hit:
    category: str
    term: str
    allowed_from: str  # an age group, or "never"
    text: str  # the words as written
    at: int = -1  # index of its first word in the text's words

    def flags(self, age_group: str) -> bool:
        return self.allowed_from == NEVER or AGE_GROUPS.index(age_group) < AGE_GROUPS.index(self.allowed_from)


def _pattern(term: str) -> tuple[str, ...]:
    return tuple(term.lower().split())


class Rules:
    def __init__(self, lexicon: dict):
        problems = check_lexicon(lexicon)
        if problems:
            raise ValueError("; ".join(problems))
        self.lexicon = lexicon
        self._terms = [
            (category, level, term, _pattern(term))
            for category in SAFETY_CATEGORIES
            for level, terms in (lexicon.get("terms", {}).get(category) or {}).items()
            for term in terms
        ]
        # Like a term, an exception is tried only where its first word is (one led by "*" everywhere).
        self._exceptions: dict[str, list[tuple[str, ...]]] = {}
        self._exceptions_anywhere: list[tuple[str, ...]] = []
        for phrase in lexicon.get("exceptions", []):
            pattern = _pattern(phrase)
            if pattern[0] == "*":
                self._exceptions_anywhere.append(pattern)
            else:
                self._exceptions.setdefault(pattern[0], []).append(pattern)
        self._by_first: dict[str, list] = {}  # a term is tried only where its first word is
        for entry in self._terms:
            self._by_first.setdefault(entry[3][0], []).append(entry)

    def with_exceptions(self, phrases: list[str]) -> Rules:
        """These rules with more exception phrases (sorted, each once)."""
        known = self.lexicon.get("exceptions", [])
        return Rules({**self.lexicon, "exceptions": [*known, *sorted(set(phrases) - set(known))]})

    def terms_for(self, age_group: str) -> list[str]:
        """The terms that count against ``age_group`` (listed under ``never`` or an older group), sorted."""
        return sorted({term for _, level, term, _ in self._terms if Hit("", term, level, "").flags(age_group)})

    def excused(self, text: str) -> set[int]:
        """Indices of the words of ``text`` that an exception phrase covers ("killed time": both words)."""
        words = tokens(text)
        excused = set()
        for start, word in enumerate(words):
            for form in sorted(word.forms & self._exceptions.keys()):
                for pattern in self._exceptions[form]:
                    if (end := _match_at(words, pattern, start, set())) is not None:
                        excused.update(range(start, end))
        for pattern in self._exceptions_anywhere:
            for start, end in _matches(words, pattern, set()):
                excused.update(range(start, end))
        return excused

    def hits(self, text: str) -> list[Hit]:
        words, excused = tokens(text), self.excused(text)
        found = []
        for start, word in enumerate(words):
            if start in excused:
                continue
            # sorted: a set's order changes with PYTHONHASHSEED, and the first hit's wording reaches removed.jsonl
            for form in sorted(word.forms & self._by_first.keys()):
                for category, level, term, pattern in self._by_first[form]:
                    end = _match_at(words, pattern, start, excused)
                    if end is not None:
                        found.append(Hit(category, term, level, text[word.start : words[end - 1].end], start))
        return found


def _matches(words: tuple[Token, ...], pattern: tuple[str, ...], excused: set[int]):
    """(start, end) word spans where ``pattern`` matches, none touching an excused word."""
    for start in range(len(words)):
        end = _match_at(words, pattern, start, excused)
        if end is not None:
            yield start, end


def _match_at(words: tuple[Token, ...], pattern: tuple[str, ...], at: int, excused: set[int]) -> int | None:
    if not pattern:
        return at
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        for skip in range(_GAP + 1):
            if at + skip <= len(words) and (end := _match_at(words, rest, at + skip, excused)) is not None:
                return end
        return None
    if at >= len(words) or at in excused or head not in words[at].forms:
        return None
    return _match_at(words, rest, at + 1, excused)


def check_lexicon(lexicon: dict) -> list[str]:
    """What is wrong with a lexicon (empty when nothing is)."""
    if not isinstance(lexicon, dict) or set(lexicon) - {"terms", "exceptions"}:
        return ["a lexicon has two keys: terms and exceptions"]
    problems = []
    for category, levels in (lexicon.get("terms") or {}).items():
        if category not in SAFETY_CATEGORIES:
            problems.append(f"terms.{category}: not a category ({', '.join(SAFETY_CATEGORIES)})")
            continue
        for level, terms in (levels or {}).items():
            if level not in LEVELS:
                problems.append(f"terms.{category}.{level}: not one of {', '.join(LEVELS)}")
            elif not isinstance(terms, list) or not all(isinstance(t, str) and t.strip() for t in terms):
                problems.append(f"terms.{category}.{level}: a list of words or phrases")
            elif any(_pattern(t)[0] == "*" or _pattern(t)[-1] == "*" for t in terms):
                problems.append(f"terms.{category}.{level}: '*' only between words")
    exceptions = lexicon.get("exceptions", [])
    if not isinstance(exceptions, list) or not all(isinstance(t, str) and t.strip() for t in exceptions):
        problems.append("exceptions: a list of phrases")
    return problems


# words too common to make an exception of ("kill the" would excuse every killing)
_COMMON = frozenset(
    "a an the and or but to of in on at by for with from as is was be been his her him their them its it he she "
    "they we you i my your our this that there then so not no all some could would should can will shall may might "
    "must one everybody everyone anybody anyone somebody someone nobody over more very when what who how why where "
    "just only every each now little old whole look looked know knew make made catch caught keep kept until into "
    "out up down off again".split()
)


def learn_exceptions(rules: Rules, safe: list[str], unsafe: list[str]) -> list[str]:
    """Phrases round a one-word rule's hit in ``safe`` texts, joined to the nearest uncommon word on either side
    within three words ("a stab in the dark" -> "stab * dark"; "dressed to kill" -> "dressed * kill"), that no
    ``unsafe`` text holds: the idioms of the hard negatives, learned. Sorted."""
    candidates = set()
    for text in safe:
        words = tokens(text)
        for hit in rules.hits(text):
            if len(_pattern(hit.term)) != 1:
                continue
            after = [j for j in range(hit.at + 1, min(hit.at + 1 + _GAP, len(words))) if words[j].word not in _COMMON]
            before = [j for j in range(hit.at - 1, max(hit.at - 1 - _GAP, -1), -1) if words[j].word not in _COMMON]
            if after:
                gap = " * " if after[0] > hit.at + 1 else " "
                candidates.add(f"{hit.term}{gap}{words[after[0]].word}")
            if before:
                gap = " * " if before[0] < hit.at - 1 else " "
                candidates.add(f"{words[before[0]].word}{gap}{hit.term}")
    held = [tokens(text) for text in unsafe]
    return sorted(c for c in candidates if not any(next(_matches(w, _pattern(c), set()), None) for w in held))
