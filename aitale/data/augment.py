"""Offline augmentation of the train split: new openings and closings, paraphrase, modern style.

Every method is a deterministic rewrite seeded per story, and a record is only added when
the rewrite changed the text. Augmented records keep the original's ``tale`` key and are
marked ``augmented: true`` with the method's name; they are made after the split, from
train stories only, so no augmented text can reach val or test.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import replace

from aitale.data.records import Story

OPENINGS = (
    "Once upon a time",
    "Long, long ago",
    "In a land far away",
    "Many years ago",
    "In the days when wishes still came true",
    "A long time ago",
)
# Matches the formula a story opens with, so it can be swapped for another.
_OPENING = re.compile(
    r"^(once upon a time|long,? long ago|long ago|in a land far away|many years ago|"
    r"in the days when wishes still came true|in olden times|in days of old|a long time ago)\b,?",
    re.IGNORECASE,
)
CLOSINGS = (
    "And that is the end of the story.",
    "And so the tale ends, as all good tales must.",
    "And they remembered that day for the rest of their lives.",
    "And if they have not gone away, they are there still.",
)

# Common words of the old tales and plain alternatives a child would also know.
SYNONYMS = {
    "said": "replied", "replied": "answered", "answered": "said", "little": "small", "small": "little",
    "big": "large", "large": "big", "great": "mighty", "quickly": "swiftly", "happy": "glad", "glad": "happy",
    "beautiful": "lovely", "lovely": "beautiful", "began": "started", "walked": "wandered", "cried": "called",
    "looked": "gazed", "wood": "forest", "forest": "wood", "home": "house", "afraid": "frightened",
    "frightened": "afraid", "clever": "wise", "old": "aged", "angry": "cross", "ran": "hurried", "shouted": "called out",
}
# Archaic diction of the 19th-century translations and its modern form.
MODERN = {
    "thee": "you", "thou": "you", "thy": "your", "thine": "yours", "ye": "you", "hast": "have", "hath": "has",
    "doth": "does", "dost": "do", "art": "are", "shalt": "shall", "wilt": "will", "canst": "can",
    "wouldst": "would", "shouldst": "should", "couldst": "could", "'twas": "it was", "'tis": "it is",
    "ere": "before", "whither": "where", "whence": "from where", "hither": "here", "thither": "there",
    "nay": "no", "aye": "yes", "oft": "often", "anon": "soon", "methinks": "I think", "perchance": "perhaps",
    "betwixt": "between", "amongst": "among", "whilst": "while", "unto": "to", "spake": "spoke",
}


def augment(stories: list[Story], methods: list[str], probability: float, seed: int) -> list[Story]:
    """Augmented copies of ``stories`` (not including the originals), in a fixed order."""
    extra = []
    for story in stories:
        for method in methods:
            rng = random.Random(_seed(seed, story.id, method))
            if rng.random() >= probability:
                continue
            text = METHODS[method](story.text, rng)
            if text != story.text:
                extra.append(replace(story, id=f"{story.id}~{method}", text=text, augmented=True, augmentation=method))
    return extra


def new_beginning(text: str, rng: random.Random) -> str:
    match = _OPENING.match(text)
    if match is None:
        return text
    others = [o for o in OPENINGS if o.lower() != match.group(1).lower()]
    return _fit_case(rng.choice(others), match.group(0)) + text[match.end() - (match.group(0).endswith(",")) :]


def new_ending(text: str, rng: random.Random) -> str:
    return f"{text}\n\n{rng.choice(CLOSINGS)}"


def paraphrase(text: str, rng: random.Random, rate: float = 0.5) -> str:
    """Swap about ``rate`` of the words found in :data:`SYNONYMS`."""
    return _replace_words(text, SYNONYMS, lambda: rng.random() < rate)


def modernise(text: str, rng: random.Random) -> str:
    return _replace_words(text, MODERN, lambda: True)


def _replace_words(text: str, table: dict[str, str], choose: Callable[[], bool]) -> str:
    pattern = re.compile(r"(?<![\w'])(" + "|".join(map(re.escape, table)) + r")(?![\w'])", re.IGNORECASE)

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        return _fit_case(table[word.lower()], word) if choose() else word

    return pattern.sub(swap, text)


def _fit_case(new: str, old: str) -> str:
    return new[0].upper() + new[1:] if old.lstrip("'")[:1].isupper() else new[0].lower() + new[1:]


def _seed(seed: int, *parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join([str(seed), *parts]).encode()).digest()[:8], "big")


METHODS: dict[str, Callable[[str, random.Random], str]] = {
    "beginning": new_beginning,
    "ending": new_ending,
    "paraphrase": paraphrase,
    "modernise": modernise,
}
