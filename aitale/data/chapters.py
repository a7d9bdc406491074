"""Books cut at their numbered headings (story books, novels), and books that are one story.

``split_numbered`` finds the headings that number the book's stories or chapters ("CHAPTER I. Down
the Rabbit-Hole", "STORY IV" over a title line, "I" over a title line, "3.  How Dorothy Saved the
Scarecrow", "Chapter One" over a title line) and keeps the longest run numbered 1, 2, 3, ... in book
order. A contents list numbers its entries too, but its entries carry no text, so they never make a
run. Each record is titled by its heading (or the short capitalised line under a bare number).

``whole_story`` is a picture book's text: from its first paragraph of prose to its end.

Both take ``strip_boilerplate`` output and give the records as ``BookStory``, like
:func:`aitale.data.gutenberg.split_stories` (the contents-guided splitter for tale collections).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aitale.data.gutenberg import (
    MIN_STORY_WORDS,
    SMALL_WORDS,
    BookStory,
    heading_title,
    is_back_matter,
    remove_bracket_blocks,
    story_text,
)
from aitale.data.text import word_count
from aitale.errors import SourceError

MIN_RUN = 3  # fewer numbered headings in a row than this do not make a book of chapters

_ROMAN = re.compile(r"(?=[ivxlc])(c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})", re.I)
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
_UNITS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split()
)
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_NUMBER = r"[ivxlc]+|\d{1,3}|[a-z]+(?:[- ][a-z]+)?"
# "CHAPTER IV", "Chapter One", "STORY XII.", "CHAPTER I: Jerry Muskrat Has a Fright", "Chapter 1 PETER BREAKS"
_KEYWORD_HEADING = re.compile(rf"(?:chapter|story),?\s+({_NUMBER})\s*(?:[.:]|--?)?\s*(.*)", re.I)
# "IV", "12.", "I. THE RIVER BANK", "3.  How Dorothy Saved the Scarecrow", "XIX Unc' Billy Possum Gives
# Warning" (the title must look like one: "I am tired" is a line of prose)
_BARE_HEADING = re.compile(r"([ivxlc]+|\d{1,3})(?:\.?|[.:]?\s+(.+))", re.I)
_MARKUP = " \t*_="  # bold, italics and centring marks around a heading
# Title-page and imprint words: a paragraph with one of them is not where a picture book's story starts.
_IMPRINT = re.compile(
    r"gutenberg|https?:|www\.|copyright|printed|published|publisher|rights reserved|edition|illustrat|dedicat"
    r"|courtesy|&\s*co\b",
    re.I,
)
_SENTENCE_END = re.compile(r"[.!?:;\"'’”)\]-]\s*$")
_MAX_TITLE_WORDS = 15


@dataclass(frozen=True)
class _Numbered:
    line: int  # index of the heading line
    number: int
    title: str  # the title on the heading line, "" when it is on the next line or absent


def split_numbered(body: str, book_id: int) -> list[BookStory] | None:
    """The book's records cut at its run of numbered headings; None when it has no such run."""
    lines = remove_bracket_blocks(body).split("\n")
    run = _longest_run(lines, _numbered_headings(lines))
    if len(run) < MIN_RUN:
        return None
    ends = [h.line for h in run[1:]] + [len(lines)]
    back = _back_matter_lines(lines)
    records = []
    for heading, end in zip(run, ends):
        end = next((i for i in back if heading.line < i < end), end)  # a tale's own NOTE, or the book's back matter
        name, first = heading.title, heading.line + 1
        if not name:
            name, first = _title_below(lines, first, end)
        text = story_text(lines[heading.line], lines[first:end], set())
        if word_count(text) >= MIN_STORY_WORDS:
            records.append(BookStory(title=heading_title(name) if name else f"Chapter {heading.number}", text=text))
    if not records:
        raise SourceError(f"Gutenberg book {book_id}: numbered headings, but no text of {MIN_STORY_WORDS}+ words")
    return records


def whole_story(body: str, name: str, book_id: int) -> list[BookStory]:
    """A book that is one story: its text from the first paragraph of prose, captions left out."""
    lines = remove_bracket_blocks(body).split("\n")
    paragraphs = _paragraph_spans(lines)
    start = next((a for a, b in paragraphs if _is_prose(lines[a:b])), None)
    if start is None:
        raise SourceError(f"Gutenberg book {book_id}: no paragraph of prose found")
    end = next((i for i in _back_matter_lines(lines) if i > start), len(lines))
    kept = [
        line for a, b in paragraphs if start <= a < end and not _is_caption(lines[a:b]) for line in [*lines[a:b], ""]
    ]
    text = story_text("", kept, set())
    if word_count(text) < MIN_STORY_WORDS:
        raise SourceError(f"Gutenberg book {book_id}: its story has fewer than {MIN_STORY_WORDS} words")
    return [BookStory(title=heading_title(name), text=text)]


# --- Numbered headings ----------------------------------------------------------------------


def number_value(token: str) -> int | None:
    """12, XII or twelve (also twenty-eight) -> 12; anything else -> None."""
    token = token.lower()
    if token.isdigit():
        return int(token)
    if _ROMAN.fullmatch(token):
        values = [_ROMAN_VALUES[ch] for ch in token]
        return sum(-v if v < after else v for v, after in zip(values, [*values[1:], 0]))
    parts = re.split(r"[- ]", token)
    tens = _TENS.get(parts[0], 0)
    units = parts[-1] if tens and len(parts) == 2 else (parts[0] if not tens and len(parts) == 1 else None)
    if units is None:
        return tens or None
    return tens + _UNITS.index(units) + 1 if units in _UNITS and (not tens or _UNITS.index(units) < 9) else None


def _numbered_headings(lines: list[str]) -> list[_Numbered]:
    """Lines standing alone that number a story or chapter, with the title they carry."""
    found = []
    for i, line in enumerate(lines):
        if not _alone(lines, i):
            continue
        text = line.strip(_MARKUP).strip()
        match = _KEYWORD_HEADING.fullmatch(text) or _BARE_HEADING.fullmatch(text)
        number = number_value(match.group(1)) if match else None
        name = ((match.group(2) or "").strip(_MARKUP + ".").strip()) if match else ""
        if number is not None and (not name or _is_title(name)):
            found.append(_Numbered(i, number, name))
    return found


def _longest_run(lines: list[str], headings: list[_Numbered]) -> list[_Numbered]:
    """The longest chain of headings numbered 1, 2, 3, ... in book order, each followed by text.

    A heading extends the longest run ending at an earlier heading numbered one below its own, or two
    below (printers skip or repeat a number: "XXII" for XXIII); of equally long runs the later wins
    (a contents list whose entries stand alone comes before the text; its entries carry no text anyway)."""
    with_text = [h for k, h in enumerate(headings) if _words_between(lines, h.line, _next_line(headings, k)) >= 20]
    best: dict[int, list[_Numbered]] = {}  # index in with_text -> the longest run ending there
    for k, heading in enumerate(with_text):
        before = [j for j in range(k) if best[j] and heading.number - 2 <= with_text[j].number < heading.number]
        chains = [best[j] for j in before]
        longest = max(chains, key=lambda run: (len(run), run[-1].line), default=None)
        best[k] = [*longest, heading] if longest else ([heading] if heading.number == 1 else [])
    return max(best.values(), key=lambda run: (len(run), run[-1].line if run else -1), default=[])


def _next_line(headings: list[_Numbered], k: int) -> int | None:
    return headings[k + 1].line if k + 1 < len(headings) else None


def _words_between(lines: list[str], start: int, end: int | None) -> int:
    return sum(len(line.split()) for line in lines[start + 1 : end])


def _title_below(lines: list[str], start: int, end: int) -> tuple[str, int]:
    """The short capitalised paragraph under a bare number (its title), and where the text starts."""
    spans = _paragraph_spans(lines[start:end])
    if not spans:
        return "", start
    a, b = spans[0]
    candidate = " ".join(line.strip(_MARKUP).strip() for line in lines[start + a : start + b])
    return (candidate, start + b) if b - a <= 3 and _is_title(candidate) else ("", start)


def _is_title(text: str) -> bool:
    """Shaped like a title: short, mostly capitalised words, not a sentence running on."""
    found = re.findall(r"[^\W\d_][\w'’-]*", text)
    content = [w for w in found if w.lower() not in SMALL_WORDS]
    capitalised = sum(w[0].isupper() for w in content)
    return (
        0 < len(found) <= _MAX_TITLE_WORDS
        and capitalised >= 0.5 * len(content)
        and not text.rstrip().endswith((",", ";"))
    )


# --- Paragraphs ------------------------------------------------------------


def _paragraph_spans(lines: list[str]) -> list[tuple[int, int]]:
    """(first line, line after the last) of each run of non-blank lines."""
    spans, start = [], None
    for i, line in enumerate([*lines, ""]):
        if line.strip() and start is None:
            start = i
        elif not line.strip() and start is not None:
            spans.append((start, i))
            start = None
    return spans


def _is_prose(block: list[str]) -> bool:
    """A paragraph of the story, not of the title page: a run of words with small letters, no imprint."""
    text = " ".join(line.strip() for line in block)
    words = text.split()
    return len(words) >= 5 and sum(w[0].islower() for w in words) >= 0.5 * len(words) and not _IMPRINT.search(text)


def _is_caption(block: list[str]) -> bool:
    """A one-line paragraph of a few words without a sentence's end: a picture's caption."""
    return len(block) == 1 and len(block[0].split()) <= 8 and not _SENTENCE_END.search(block[0])


def _back_matter_lines(lines: list[str]) -> list[int]:
    """The lines standing alone that open back matter ("THE END", "NOTE", an index), in order."""
    found = []
    for i, line in enumerate(lines):
        if _alone(lines, i) and is_back_matter(line.strip(_MARKUP)):
            found.append(i)
    return found


def _alone(lines: list[str], i: int) -> bool:
    """Line ``i`` is text with a blank line (or the book's edge) above and below it."""
    return (
        bool(lines[i].strip())
        and (i == 0 or not lines[i - 1].strip())
        and (i + 1 == len(lines) or not lines[i + 1].strip())
    )
