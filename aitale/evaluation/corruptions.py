"""Seeded corruptions of a real story, one per narrative metric, and the check that uses them.

Each corruption is ``(text, rng) -> text`` and breaks the story in the one way its metric
is meant to notice; it returns ``text`` unchanged when the story offers nothing to break
(one sentence to shuffle, no named character mentioned on both sides of the cut), and
``validate`` leaves such stories out of that metric's rate.

- ``shuffle_sentences`` (coherence): every sentence moved to a random place, paragraph sizes kept.
- ``swap_halves`` (arc_consistency): the second half (cut at the sentence nearest the middle
  word) told before the first, so the ending lands mid-story and the story ends mid-arc.
- ``swap_names`` (character_consistency): from a sentence 30-60% of the way in, the names of
  the two most mentioned characters (named three times or more, on both sides of the cut)
  are exchanged, or (one time in two, or when only one qualifies) the most mentioned one is
  renamed to a name new to the story.
- ``splice_unsafe`` (age_appropriateness): three passages of the safety labels' test part that
  are not fit for ages 3-5 (so never seen by the screen's classifier), inserted between sentences.
- ``loop_paragraph`` (creativity): one paragraph repeated three to five times in place.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aitale.data.text import paragraphs, split_sentences
from aitale.evaluation.narrative import arc, coherence, creativity
from aitale.evaluation.narrative import characters as cast
from aitale.evaluation.narrative.age import age_appropriateness
from aitale.evaluation.narrative.characters import characters

log = logging.getLogger(__name__)

Corruption = Callable[[str, random.Random], str]
Metric = Callable[[str], float]


def _paragraph_sentences(text: str) -> list[list[str]]:
    return [split_sentences(p) for p in paragraphs(text)]


def _join(pars: Sequence[Sequence[str]]) -> str:
    return "\n\n".join(" ".join(p) for p in pars if p)


def shuffle_sentences(text: str, rng: random.Random) -> str:
    """The story's sentences in a random order, refilled into paragraphs of the original sizes."""
    pars = _paragraph_sentences(text)
    flat = [s for p in pars for s in p]
    if len(set(flat)) < 2:
        return text
    order = list(flat)
    while order == flat:
        rng.shuffle(order)
    moved = iter(order)
    return _join([[next(moved) for _ in p] for p in pars])


def swap_halves(text: str, rng: random.Random | None = None) -> str:
    """The second half of the story, then the first (cut at the sentence boundary nearest the middle word).

    ``rng`` is unused: the cut is determined by the text.
    """
    pars = _paragraph_sentences(text)
    flat = [(i, s) for i, p in enumerate(pars) for s in p]
    if len(flat) < 2:
        return text
    ends, total = [], 0
    for _, sentence in flat:
        total += len(sentence.split())
        ends.append(total)
    cut = min(range(1, len(flat)), key=lambda k: abs(ends[k - 1] - total / 2))
    first, second = _regroup(flat[:cut]), _regroup(flat[cut:])
    return _join(second + first)


def _regroup(numbered: list[tuple[int, str]]) -> list[list[str]]:
    groups: list[list[str]] = []
    last = None
    for index, sentence in numbered:
        if index != last:
            groups.append([])
            last = index
        groups[-1].append(sentence)
    return groups


# Names for a renamed character: the first that the story does not contain is used.
_NEW_NAMES = ("Tobias", "Marigold", "Jasper", "Wren", "Clementine", "Bartholomew", "Ottoline", "Peregrine")


def swap_names(text: str, rng: random.Random) -> str:
    """From a sentence 30-60% of the way in, two main characters' names exchanged, or one renamed."""
    cast = characters(text)
    n = len(cast.tokens)
    if n < 4 or not cast.mentions:
        return text
    cut = rng.randint(int(n * 0.3), max(int(n * 0.6), int(n * 0.3) + 1))
    before = Counter(m.name for m in cast.mentions if m.sentence < cut)
    after = Counter(m.name for m in cast.mentions if m.sentence >= cut)
    main = [name for name, k in cast.counts().most_common() if k >= 3 and before[name] and after[name]]
    if not main:
        return text
    if len(main) >= 2 and rng.random() < 0.5:
        mapping = {main[0]: main[1], main[1]: main[0]}
    else:
        lowered = text.lower()
        mapping = {main[0]: next(new for new in _NEW_NAMES if new.lower() not in lowered)}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b(?!-)")
    pars, k = [], 0
    for par in _paragraph_sentences(text):
        out = []
        for sentence in par:
            out.append(pattern.sub(lambda m: mapping[m.group(1)], sentence) if k >= cut else sentence)
            k += 1
        pars.append(out)
    return _join(pars)


# Adult-register prose: long words, long sentences, and terms of each content rule.
def splice_unsafe(passages: Sequence[str]) -> Corruption:
    """Three of ``passages`` inserted at random sentence boundaries."""

    def corrupt(text: str, rng: random.Random) -> str:
        pars = _paragraph_sentences(text)
        slots = [(i, j) for i, p in enumerate(pars) for j in range(len(p) + 1)]
        for (i, j), passage in zip(sorted(rng.choices(slots, k=3), reverse=True), rng.sample(list(passages), 3)):
            pars[i].insert(j, passage)
        return _join(pars)

    return corrupt


def loop_paragraph(text: str, rng: random.Random) -> str:
    """One paragraph repeated three to five times in a row, as a looping generator would."""
    pars = paragraphs(text)
    if not pars:
        return text
    i = rng.randrange(len(pars))
    pars[i : i + 1] = [pars[i]] * rng.randint(3, 5)
    return "\n\n".join(pars)


# --- Validation ------------------------------------------------------------------------------


def default_checks(screen=None, unsafe: Sequence[str] = ()) -> dict[str, tuple[Metric, Corruption]]:
    """Each narrative metric with the corruption it should notice (age_appropriateness only with a ``screen``
    and ``unsafe`` passages to splice in).

    A metric with a grammar half is checked by its own ``measure``, the half a corruption is meant to move: the
    corruptions keep every sentence's words in order, so Link Grammar's verdicts, and that half, stay the same.
    """
    checks: dict[str, tuple[Metric, Corruption]] = {
        "coherence": (coherence.measure, shuffle_sentences),
        "arc_consistency": (arc.measure, swap_halves),
        "character_consistency": (cast.measure, swap_names),
        "creativity": (creativity.measure, loop_paragraph),
    }
    if screen is not None:
        checks["age_appropriateness"] = (
            lambda text: age_appropriateness(text, screen),
            splice_unsafe(unsafe),
        )
    return checks


@dataclass(frozen=True)
class Check:
    rate: float | None  # share of compared stories whose real text scores higher; None when none compared
    compared: int
    excluded: int  # stories the corruption could not change


def validation_report(
    texts: Sequence[str],
    metrics: dict[str, tuple[Metric, Corruption]] | None = None,
    *,
    screen=None,
    unsafe: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, Check]:
    """For each metric: how often metric(real) > metric(corrupted), over the stories its corruption changes."""
    report = {}
    for name, (metric, corrupt) in (metrics or default_checks(screen, unsafe)).items():
        wins = compared = excluded = 0
        for index, text in enumerate(texts):
            corrupted = corrupt(text, random.Random(f"{seed}/{name}/{index}"))
            if corrupted == text:
                excluded += 1
                continue
            compared += 1
            wins += metric(text) > metric(corrupted)
        report[name] = Check(wins / compared if compared else None, compared, excluded)
    return report


def validate(
    texts: Sequence[str],
    metrics: dict[str, tuple[Metric, Corruption]] | None = None,
    *,
    screen=None,
    unsafe: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, float]:
    """Per metric, the fraction of stories where metric(real) > metric(corrupted with its corruption).

    ``metrics`` maps a name to (metric, corruption); by default every narrative metric with
    its corruption (``default_checks``). Stories a corruption cannot change are left out
    (``validation_report`` gives the counts); a metric with no story left is omitted.
    """
    report = validation_report(texts, metrics, screen=screen, unsafe=unsafe, seed=seed)
    for name, check in report.items():
        if check.excluded:
            log.info(
                "validation %s: %d of %d stories left out (nothing to corrupt)",
                name,
                check.excluded,
                check.excluded + check.compared,
            )
    return {name: round(check.rate, 4) for name, check in report.items() if check.rate is not None}
