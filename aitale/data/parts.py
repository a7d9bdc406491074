"""Records too long for the model, cut at paragraph breaks into parts of about equal length.

A record of ``w`` words over the limit ``p`` becomes the fewest parts, from ``ceil(w / p)`` on, that each
fit the limit when every part is cut at the paragraph break nearest its share of the words (a paragraph
longer than the limit is first cut between its sentences), so parts are of about equal length and no part
is a stray last paragraph. A part keeps the record's title with its number
("The Snow Queen (part 2)"), its labels and its ``tale`` key, so a record's parts always land in one
split; its id is the record's with ``/part-N``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import accumulate

from aitale.data.records import Story
from aitale.data.text import paragraphs, split_sentences, word_count


def cut_into_parts(story: Story, part_words: int) -> list[Story]:
    """``story`` alone when it has at most ``part_words`` words, else its parts in order."""
    if word_count(story.text) <= part_words:
        return [story]
    units = _units(story.text, part_words)
    before = [0, *accumulate(word_count(unit) for unit in units)]  # words before unit i
    # the fewest parts of about equal length that each fit (one part per unit always does)
    for count in range(math.ceil(before[-1] / part_words), len(units) + 1):
        cuts = _cuts(before, count)
        if all(before[b] - before[a] <= part_words for a, b in zip(cuts, cuts[1:])):
            break
    return [
        replace(story, id=f"{story.id}/part-{n}", title=f"{story.title} (part {n})", text="\n\n".join(units[a:b]))
        for n, (a, b) in enumerate(zip(cuts, cuts[1:]), start=1)
    ]


def _cuts(before: list[int], count: int) -> list[int]:
    """Unit indices that start each of ``count`` parts (and the end), each at the break nearest its share."""
    cuts = [0]
    for k in range(1, count):
        free = range(cuts[-1] + 1, len(before) - 1)  # a cut before unit i, after the last cut
        if free:
            cuts.append(min(free, key=lambda i: abs(before[i] - before[-1] * k / count)))
    return [*cuts, len(before) - 1]


def _units(text: str, part_words: int) -> list[str]:
    """The paragraphs of ``text``; one longer than ``part_words`` is cut into runs of its sentences."""
    units = []
    for paragraph in paragraphs(text):
        if word_count(paragraph) <= part_words:
            units.append(paragraph)
            continue
        run: list[str] = []
        for sentence in split_sentences(paragraph):
            if run and word_count(" ".join([*run, sentence])) > part_words:
                units.append(" ".join(run))
                run = []
            run.append(sentence)
        units.append(" ".join(run))
    return units
