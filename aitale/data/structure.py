"""The story-structure and control tokens, and the labels behind them, declared once.

A structured story reads::

    <|title|>The Lantern Fox
    <|age:3-5|><|style:bedtime|><|theme:kindness|>
    <|beginning|>First paragraphs...
    <|middle|>...
    <|ending|>Last paragraphs...<|endoftext|>

The control line names the age group, style and themes the story was written for; a prompt
ending in ``<|beginning|>`` asks the model for a whole tale of those, and one without the
control line for any tale. The part markers teach it where stories turn and end. Prepare,
the tokenizer, training, generation, export and the server all take the tokens from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from aitale.data.text import paragraphs, sentences
from aitale.labels import AGE_GROUPS, STYLES, THEMES

TITLE = "<|title|>"
BEGINNING = "<|beginning|>"
MIDDLE = "<|middle|>"
ENDING = "<|ending|>"
END_OF_TEXT = "<|endoftext|>"  # GPT-2's own end-of-text token, so pretrained models already know it
PART_TOKENS = (TITLE, BEGINNING, MIDDLE, ENDING, END_OF_TEXT)


def age_token(age_group: str) -> str:
    return f"<|age:{age_group}|>"


def style_token(style: str) -> str:
    return f"<|style:{style}|>"


def theme_token(theme: str) -> str:
    return f"<|theme:{theme}|>"


CONTROL_TOKENS = (*map(age_token, AGE_GROUPS), *map(style_token, STYLES), *map(theme_token, THEMES))
SPECIAL_TOKENS = (*PART_TOKENS, *CONTROL_TOKENS)

PART_SHARE = 0.2  # beginning and ending each take about a fifth of the words
_CONTROLS = re.compile("(?:" + "|".join(map(re.escape, CONTROL_TOKENS)) + ")+\n?")


def controls(age_group: str | None = None, style: str | None = None, themes: Iterable[str] = ()) -> str:
    """The control line for a request (empty when nothing is asked for), themes in :data:`THEMES` order."""
    chosen = set(themes)
    tokens = (
        ([age_token(age_group)] if age_group else [])
        + ([style_token(style)] if style else [])
        + [theme_token(t) for t in THEMES if t in chosen]
    )
    return "".join(tokens) + "\n" if tokens else ""


def as_text(typed: str) -> str:
    """Text a person typed, as it may stand in a prompt: every special token opens with ``<|``, so a space
    put after each such ``<`` keeps a typed ``<|age:9-12|>`` or ``<|endoftext|>`` text, never a token."""
    return typed.replace("<|", "< |")


def prompt(title: str, age_group: str | None = None, style: str | None = None, themes: Iterable[str] = ()) -> str:
    """The text a model continues to tell a story called ``title`` for the given labels (all optional).

    A label left out is left out of the control line; with none, the prompt is what an unconditioned
    training record (``strip_controls``, ``train.control_dropout``) opens with."""
    return f"{TITLE}{as_text(title)}\n{controls(age_group, style, themes)}{BEGINNING}"


def structure(
    title: str, text: str, age_group: str | None = None, style: str | None = None, themes: Sequence[str] = ()
) -> str:
    """The training text: the control tokens open the story and come again before its middle and ending,
    so a training block cut from the middle of a long story still sees what the story was asked to be."""
    beginning, middle, ending = split_parts(text)
    again = controls(age_group, style, themes).rstrip("\n")
    return (
        f"{prompt(title, age_group, style, themes)}{beginning}\n{again}{MIDDLE}{middle}\n{again}{ENDING}"
        f"{ending}{END_OF_TEXT}"
    )


def strip_controls(structured: str) -> str:
    """The same structured text without its control tokens: what an unconditioned record reads."""
    return _CONTROLS.sub("", structured)


def request_and_story(record: dict, drop_controls: bool = False) -> tuple[str, str]:
    """A story record as a sequence-to-sequence pair: the request (the prompt a causal model continues:
    title, age group, style, themes) and the story (the rest of the structured text, without end-of-text)."""
    request = prompt(record["title"], record.get("age_group"), record.get("style"), record.get("themes") or ())
    story = record["structured"].removeprefix(request).removesuffix(END_OF_TEXT)
    if drop_controls:
        request, story = strip_controls(request), strip_controls(story)
    return request, story


def split_parts(text: str) -> tuple[str, str, str]:
    """Beginning, middle and ending, cut at paragraph (or, for short texts, sentence) breaks."""
    units, joiner = paragraphs(text), "\n\n"
    if len(units) < 3:
        units, joiner = sentences(text), " "
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
