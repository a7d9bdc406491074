"""Offline augmentation of the train split: new openings and closings, paraphrase, modern diction.

Every method is a deterministic rewrite seeded per story, and a record is only added when the
rewrite changed the text and the content screen passes it for the story's age group. Augmented
records keep the original's ``tale`` key and are marked ``augmented: true`` with the method's
name; they are made after the split, from train stories only, so no augmented text can reach val
or test.

* ``beginning``: an opening formula in the story's register (:data:`OPENINGS`): a formula the
  story already opens with is swapped for another; otherwise one is fused into a first sentence
  that starts with a place or a scene ("In the kingdom of ..." -> "Once upon a time, in the
  kingdom of ..."), or set before the story as its own line.
* ``ending``: a closing line in the story's register (:data:`CLOSINGS`), unless it already ends
  with one.
* ``paraphrase``: synonyms by part of speech (:mod:`aitale.data.lexicon`), re-inflected with
  lemminflect ("walked" -> "strolled"); a word is swapped only when its part of speech and
  inflection are certain, so an unsure word is left alone.
* ``modernise``: the archaic diction of the old translations in modern form, with its grammar:
  the verb beside "thou" agrees with "you" ("thou art" -> "you are", "thou knowest" -> "you
  know", "knowest thou" -> "do you know"), "-eth" becomes "-s" ("he cometh" -> "he comes"), and
  "art" is only a verb beside "thou" ("the art of weaving" stays). The custom stories are
  written in modern English, so it changes few of them; the book stories are its material.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from lemminflect import getAllLemmas, getInflection

from aitale.data.lexicon import INTRANSITIVE, SYNONYMS
from aitale.data.records import Story


class ScreenLike(Protocol):
    """What augmentation needs of the content screen (`aitale.safety.Screen`)."""

    def judge(self, text: str, age_group: str): ...


# --- beginnings and endings ------------------------------------------------------------

OPENINGS: dict[str, dict[str, tuple[str, ...]]] = {
    # "fused": formulas that lead into a first sentence starting with a place or a scene;
    # "lines": openings that stand before the story as their own paragraph.
    "fairy_tale": {
        "fused": ("Once upon a time", "Long, long ago", "A long time ago", "In the days when wishes still came true"),
        "lines": (
            "Once upon a time, in a land not so very far from here, this is what happened.",
            "Long ago, when wishes still came true, there was a tale worth telling, and here it is.",
            "Gather round, for this is a tale from long ago.",
        ),
    },
    "fable": {
        "fused": ("Long ago", "Once upon a time", "In the old days"),
        "lines": (
            "Here is a fable, short and old, with a lesson tucked inside it.",
            "Listen well, for this fable has something to teach.",
            "This is a fable that has been told for a long time, and it is still worth hearing.",
        ),
    },
    "bedtime": {
        "fused": ("Once upon a time", "Once, not so long ago", "A little while ago"),
        "lines": (
            "Snuggle down under the covers, close your eyes, and listen.",
            "The stars are out and the house is quiet, so here is a story for the end of the day.",
            "Here is a gentle story to help you drift off to sleep.",
        ),
    },
}
CLOSINGS: dict[str, tuple[str, ...]] = {
    "fairy_tale": (
        "And so the tale ends, as all good tales must.",
        "And if they have not gone away, they are there still.",
        "And that is the end of the tale.",
    ),
    "fable": (
        "And that is the lesson of this fable.",
        "And so the lesson was learned, and it was not forgotten.",
        "Remember this fable, for the lesson in it is a true one.",
    ),
    "bedtime": (
        "The end. Now close your eyes and sleep tight.",
        "And now it is time for you to sleep, too. Goodnight.",
        "Sweet dreams, little one. The end.",
    ),
}
# A formula the story opens with, so it can be swapped for another.
_OPENING = re.compile(
    r"^(once upon a time|long,? long ago|long ago|a long time ago|in a land far away|many years ago|"
    r"in the days when wishes still came true|in olden times|in days of old|in the old days|"
    r"once, not so long ago|a little while ago)\b,?\s*",
    re.IGNORECASE,
)
# First words of a sentence that sets a place or a scene: an opening formula can lead into it.
_FUSABLE = frozenset("in at on deep high under across beneath beside far near where the a there".split())
_CLOSED = re.compile(
    r"(the end|happily ever after|goodnight|good night|sweet dreams|sleep tight|there still)[.!\"'”]*\s*$",
    re.IGNORECASE,
)


def new_beginning(text: str, rng: random.Random, style: str = "fairy_tale") -> str:
    """``text`` with an opening formula of ``style``'s register (see the module's docstring)."""
    register = OPENINGS.get(style, OPENINGS["fairy_tale"])
    match = _OPENING.match(text)
    if match is not None:
        said = match.group(1).lower().replace(",", "")
        others = [o for o in register["fused"] if o.lower().replace(",", "") != said]
        return f"{rng.choice(others)}, {text[match.end() :]}"
    first = re.match(r"[A-Za-z]+", text)
    if first is not None and first.group(0).lower() in _FUSABLE and rng.random() < 0.5:
        return f"{rng.choice(register['fused'])}, {text[0].lower()}{text[1:]}"
    return f"{rng.choice(register['lines'])}\n\n{text}"


def new_ending(text: str, rng: random.Random, style: str = "fairy_tale") -> str:
    """``text`` with a closing line of ``style``'s register; unchanged when it already ends with one."""
    if _CLOSED.search(text):
        return text
    return f"{text.rstrip()}\n\n{rng.choice(CLOSINGS.get(style, CLOSINGS['fairy_tale']))}"


# --- paraphrase --------------------------------------------------------------------------

_WORD = re.compile(r"(?<![\w'’-])[A-Za-z]+(?![\w'’-])")
# Adjectives are swapped in their plain form only: "angrier" -> "crosser" would not read well.
_TAGS = {"VERB": ("VB", "VBD", "VBN", "VBG", "VBZ", "VBP"), "NOUN": ("NN", "NNS"), "ADJ": ("JJ",), "ADV": ("RB",)}
_BASE = frozenset({"VB", "VBP", "NN", "JJ", "RB"})
_PARTICLES = frozenset({"up", "off", "out", "over", "down"})
_DETERMINERS = frozenset(
    "the a an his her their my your our its this that these those every each some no any one another".split()
)
_OBJECTS = _DETERMINERS | {"him", "me", "us", "them", "it", "you"}
_VERB_CUES = frozenset(
    "to i you he she it we they will would can could shall should must may might did do does not never".split()
)
_PREDICATE_CUES = frozenset(
    "is was were are am be been being very so too quite rather most more felt feel feels seemed seem seems "
    "looked look looks became become becomes grew".split()
)
# Fixed phrases whose words mean something else than their parts: never paraphrased.
_IDIOMS = re.compile(
    r"\b(big (sister|brother|day|deal|heart|breath|yawn|smile|grin|bite|mouthful|noise|sigh|hug|idea|voice)|"
    r"great big|very (nearly|almost)|small (talk|hours)|rock and roll|story ?book|quick as|gift of the gab)\b",
    re.IGNORECASE,
)


def paraphrase(text: str, rng: random.Random, rate: float = 0.5) -> str:
    """Swap about ``rate`` of the words whose part of speech and inflection are certain for a synonym."""
    protected = [m.span() for m in _IDIOMS.finditer(text)]
    words = list(_WORD.finditer(text))
    out, last = [], 0
    for i, match in enumerate(words):
        word = match.group(0)
        if any(a <= match.start() < b for a, b in protected):
            continue
        before = words[i - 1].group(0).lower() if i else ""
        gap = text[words[i - 1].end() : match.start()] if i else text[: match.start()]
        if word[0].isupper() and not (i == 0 or re.search(r"[.!?]\s*[\"“‘']?\s*$", gap) or "“" in gap or '"' in gap):
            continue  # a name or a title word, not a sentence's first word
        after = words[i + 1].group(0).lower() if i + 1 < len(words) else ""
        options = _synonyms(word.lower(), before if gap.strip() in ("", ",") or i == 0 else "", after)
        if not options or rng.random() >= rate:
            continue
        new = rng.choice(options)
        new = new[0].upper() + new[1:] if word[0].isupper() else new
        start = match.start()
        if before in ("a", "an") and gap.isspace():  # "a huge" -> "an enormous"
            article = words[i - 1]
            wanted = "an" if new[0].lower() in "aeiou" else "a"
            wanted = wanted.capitalize() if article.group(0)[0].isupper() else wanted
            out += [text[last : article.start()], wanted, gap]
        else:
            out.append(text[last:start])
        out.append(new)
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def _synonyms(word: str, before: str, after: str) -> list[str]:
    """The synonyms ``word`` can take in this context, inflected like it; [] when unsure."""
    readings = getAllLemmas(word)
    if not readings:
        return []
    candidates = [(pos, lemma) for pos, lemmas in readings.items() for lemma in lemmas if (lemma, pos) in SYNONYMS]
    if not candidates:
        return []
    if len(readings) > 1:  # more than one part of speech: the context must say which
        chosen = _context_pos(set(readings), before, after)
        candidates = [(pos, lemma) for pos, lemma in candidates if pos == chosen]
        if not candidates:
            return []
    if len(set(candidates)) > 1:
        return []
    pos, lemma = candidates[0]
    if pos == "VERB" and (after in _PARTICLES or before in _DETERMINERS):
        return []  # "hurry up": a phrasal verb means more than its verb; "her walking stick": not a verb here
    tags = [tag for tag in _TAGS[pos] if word in _forms(lemma, tag)]
    if not tags:
        return []
    options = []
    for synonym in SYNONYMS[(lemma, pos)]:
        if pos == "VERB" and synonym.split()[0] in INTRANSITIVE and after in _OBJECTS:
            continue
        forms = {_inflect(synonym, tag) for tag in tags}
        if len(forms) == 1 and None not in forms:
            options.append(forms.pop())
    return options


def _forms(lemma: str, tag: str) -> tuple[str, ...]:
    forms = getInflection(lemma, tag) or ()
    return (lemma, *forms) if tag in _BASE else forms


def _inflect(synonym: str, tag: str) -> str | None:
    head, _, rest = synonym.partition(" ")  # "set off": inflect the first word
    if tag in _BASE:
        return synonym
    forms = getInflection(head, tag)
    return (forms[0] + (" " + rest if rest else "")) if forms else None


def _context_pos(readings: set[str], before: str, after: str) -> str | None:
    """The part of speech the neighbours give a word that has several; None when they do not say."""
    if before in _DETERMINERS:
        if "ADJ" in readings and "NOUN" in getAllLemmas(after):
            return "ADJ"  # "the tired fox"
        return "NOUN" if "NOUN" in readings else None
    if before in _VERB_CUES and "VERB" in readings:
        return "VERB"
    if before in _PREDICATE_CUES and "ADJ" in readings:
        return "ADJ"
    return None


# --- modernise ---------------------------------------------------------------------------

MODERN = {
    "thee": "you", "thou": "you", "thy": "your", "ye": "you", "hath": "has", "doth": "does",
    "'twas": "it was", "'tis": "it is", "’twas": "it was", "’tis": "it is", "'twere": "it were",
    "ere": "before", "whither": "where", "whence": "from where", "hither": "here", "thither": "there",
    "nay": "no", "oft": "often", "methinks": "I think", "perchance": "perhaps", "betwixt": "between",
    "amongst": "among", "whilst": "while", "unto": "to", "spake": "spoke", "wherefore": "why",
    "mayhap": "perhaps", "verily": "truly", "forsooth": "truly", "naught": "nothing",
    "thyself": "yourself", "ye'll": "you'll", "alack": "alas", "twain": "two",
}  # fmt: skip
# Verbs that agree with "thou": modern only beside it ("thou art" -> "you are"; "art" alone is a noun).
THOU_VERBS = {
    "art": "are", "hast": "have", "dost": "do", "wilt": "will", "shalt": "shall", "canst": "can",
    "wouldst": "would", "shouldst": "should", "couldst": "could", "mayst": "may", "mightst": "might",
    "wert": "were", "wast": "were", "didst": "did", "hadst": "had", "shouldest": "should", "mayest": "may",
}  # fmt: skip


def modernise(text: str, rng: random.Random | None = None) -> str:
    """The archaic diction of ``text`` in modern form (deterministic: ``rng`` is not used)."""
    tokens = re.split(r"((?<![\w'’])['’]?[A-Za-z]+(?![\w'’]))", text)
    at = list(range(1, len(tokens), 2))  # tokens[at[n]] is the n-th word; the others are what lies between
    low = [tokens[i].lower() for i in at]
    new: dict[int, str] = {}
    for n, word in enumerate(low):
        prev = low[n - 1] if n else ""
        nxt = low[n + 1] if n + 1 < len(low) else ""
        if n in new:
            continue  # already rewritten with its verb: "goest thou" -> "do you go"
        if word in MODERN:
            new[n] = MODERN[word]
        elif word == "yonder":  # "yonder hill" -> "that hill"; "over yonder" -> "over there"
            new[n] = "there" if prev == "over" else "that" if nxt and tokens[at[n] + 1] == " " else "over there"
        elif word == "thine":  # "thine own" -> "your own"; "is thine." -> "is yours."
            new[n] = "your" if nxt and tokens[at[n] + 1] == " " else "yours"
        elif prev == "thou":
            verb = THOU_VERBS.get(word) or _thou_verb(word)
            if verb is not None:
                new[n] = verb
        elif nxt == "thou":
            if word in THOU_VERBS:  # "art thou" -> "are you"
                new[n] = THOU_VERBS[word]
            elif (verb := _thou_verb(word)) is not None:  # "goest thou" -> "do you go"
                new[n], new[n + 1] = "do", f"you {verb}"
        elif word.endswith("eth") and (verb := _eth_verb(word)) is not None:
            new[n] = verb
    for n, word in new.items():
        old = tokens[at[n]]
        tokens[at[n]] = word[0].upper() + word[1:] if old.lstrip("'’")[:1].isupper() else word
    return "".join(tokens)


def _thou_verb(word: str) -> str | None:
    """``knowest`` -> ``know``, ``lovest`` -> ``love``, ``seest`` -> ``see``; None for other words."""
    if not word.endswith("st") or getAllLemmas(word):
        return None
    for base in (word[:-3], word[:-3] + "e", word[:-2], word[:-4] if word.endswith("iest") else ""):
        if base and "VERB" in getAllLemmas(base) and getAllLemmas(base)["VERB"][0] == base:
            return base if not word.endswith("iest") else base + "y"
    return None


def _eth_verb(word: str) -> str | None:
    """``cometh`` -> ``comes``, ``goeth`` -> ``goes``; None for words that are not such a verb."""
    if not word.endswith("eth") or len(word) < 5 or getAllLemmas(word):
        return None
    for base in (word[:-3], word[:-3] + "e", word[:-4] + "y" if word.endswith("ieth") else ""):
        if base and "VERB" in getAllLemmas(base) and getAllLemmas(base)["VERB"][0] == base:
            forms = getInflection(base, "VBZ")
            return forms[0] if forms else None
    return None


# --- applying them -----------------------------------------------------------------------


@dataclass
class Augmented:
    """The augmented records, and per method how many stories it was tried on and what came of it."""

    records: list[Story] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def augment(
    stories: list[Story], methods: list[str], probability: float, seed: int, screen: ScreenLike | None = None
) -> Augmented:
    """Augmented copies of ``stories`` (not including the originals), in a fixed order.

    A copy is kept when the method changed the text and ``screen`` (when given) passes it for the
    story's age group; ``counts[method]`` has ``tried``, ``added``, ``unchanged`` and ``unsafe``.
    """
    result = Augmented(counts={m: {"tried": 0, "added": 0, "unchanged": 0, "unsafe": 0} for m in methods})
    for story in stories:
        for method in methods:
            rng = random.Random(_seed(seed, story.id, method))
            if rng.random() >= probability:
                continue
            counts = result.counts[method]
            counts["tried"] += 1
            text = rewrite(story, method, rng)
            if text == story.text:
                counts["unchanged"] += 1
            elif screen is not None and not screen.judge(text, story.age_group).safe:
                counts["unsafe"] += 1
            else:
                counts["added"] += 1
                result.records.append(
                    replace(story, id=f"{story.id}~{method}", text=text, augmented=True, augmentation=method)
                )
    return result


def rewrite(story: Story, method: str, rng: random.Random) -> str:
    """``story``'s text rewritten by ``method``."""
    if method in ("beginning", "ending"):
        return METHODS[method](story.text, rng, story.style)
    return METHODS[method](story.text, rng)


def changed_share(stories: list[Story | dict], method: str, seed: int, screen: ScreenLike | None = None) -> float:
    """The share of ``stories`` that ``method`` changes (into text ``screen`` passes), applied to every one."""
    fields = Story.__dataclass_fields__
    records = [s if isinstance(s, Story) else Story(**{k: v for k, v in s.items() if k in fields}) for s in stories]
    changed = 0
    for story in records:
        text = rewrite(story, method, random.Random(_seed(seed, story.id, method)))
        changed += text != story.text and (screen is None or screen.judge(text, story.age_group).safe)
    return changed / len(records) if records else 0.0


def _seed(seed: int, *parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join([str(seed), *parts]).encode()).digest()[:8], "big")


METHODS: dict[str, Callable[..., str]] = {
    "beginning": new_beginning,
    "ending": new_ending,
    "paraphrase": paraphrase,
    "modernise": modernise,
}
