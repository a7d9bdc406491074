"""Project Gutenberg books -> individual stories.

A book goes through three steps (``parse_book`` runs them all):

1. ``decode_book``: bytes -> text, refusing files that are not a plain-text book.
2. ``strip_boilerplate``: keep the book between the Gutenberg START and END markers.
3. ``split_stories``: drop the front and back matter and cut the book at its story titles.

Splitting leans on the book's own table of contents: each contents entry is looked up as a
standalone heading line in the body, in contents order, which copes with headings that are
spelled a little differently from the contents (case, numbering, punctuation, footnote
marks). A book without a usable contents falls back to spotting headings by their shape:
a short capitalised line set apart by blank lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher

from aitale.data.normalize import normalize_text
from aitale.data.text import word_count
from aitale.errors import SourceError

MIN_STORY_WORDS = 80  # below this a section is a fragment (a heading, a note), not a story


@dataclass(frozen=True)
class BookStory:
    title: str  # human title in Title Case, never empty
    text: str  # normalize_text() output, without the title line


# --- Section headings -------------------------------------------------------------------
# Matched in full against a heading's key (see _title_key: lower case, punctuation as
# spaces, numbering, page numbers and bracketed asides removed).

# Introduces a table of contents.
_CONTENTS_HEADING = re.compile(r"(table of )?contents|story list|list of (stories|tales|fables|chapters)")
_MAYBE_CONTENTS = re.compile(r"contents|list", re.I)

# A transcriber's or editor's notes ("JAPANESE FAIRY WORLD - TRANSCRIBER'S NOTES").
_TRANSCRIBER_HEADING = re.compile(r"(.* )?(transcriber|editor|preparer) s notes?")

# Sections that are not stories, wherever they stand: the text under them is dropped
# until the next story heading.
_NON_STORY_HEADING = re.compile("|".join([
    _CONTENTS_HEADING.pattern, r"(list of |full page )?illustrations", r"in (colour|color|black and white)",
    r"preface", r"introduction( .*)?", r"introductory", r"dedication", r"foreword",
    _TRANSCRIBER_HEADING.pattern, r"footnotes?", r"(a )?short history of .*", r"page",
]))

# Sections that end the stories: nothing after the first of these is a story, which keeps
# notes that repeat the story titles (e.g. "I. THE LION AND THE CRANE.") from being taken
# for the stories themselves.
_BACK_MATTER_HEADING = re.compile("|".join([
    r"notes?( (and|on) .*)?", r"references", r"index", r"appendix", r"glossary", r"bibliography",
    r"the end", r"and this is the end of .*", r"uniform with this volume", r"advertisements?",
    # publishers' lists and imprints after the last story (957, 15946, 43212, 6746, 7871)
    r"(the )?[\w ]*books by [\w ]+", r"end of (the )?[\w ]*book", r"het einde", r"printers", r"letchworth",
    r"(made at )?the temple press( letchworth)?( great britain)?",
]))

# Headings inside a story ("FIRST STORY", "CHAPTER II", "The Moral"): never the start of
# a new story, even when the contents lists them. (Numbered parts such as "1. HOW THEY
# WENT ..." are recognised by their numbering, see _read_contents and _is_fallback_title.)
_SUB_HEADING = re.compile("|".join([
    r"(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last) (story|part|tale|chapter|adventure)",
    r"(chapter|part|book|section) [0-9ivxlc]+", r"(the )?moral", r"another( moral)?",
]))

# --- Line-level patterns ----------------------------------------------------------------
# Older releases wrap a long title onto a second line that ends the marker ("...GRANDFATHER\nFROG***").
_START_MARKER = re.compile(
    r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b(?:.*\*{3}[ \t]*$|.*\n.*\*{3}[ \t]*$|.*$)", re.I | re.M
)
_END_MARKER = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.I | re.M)
# Gutenberg's own notes inside the markers: producer credits on top, a sign-off at the end.
_CREDITS = re.compile(
    r"\s*(?:produced by|e-?text prepared by|transcribed by"
    r"|note: project gutenberg also has|this e-?book is courtesy)\b",  # older releases' notes (14375, 11757)
    re.I,
)
_END_NOTICE = re.compile(r"^[ \t]*End of (?:the )?Project Gutenberg.*?(?=\n[ \t]*\n|\Z)", re.I | re.M | re.S)

# Editorial blocks opening a line: [Illustration: ...], [Footnote 1: ...], [Transcriber's
# note: ...], an editor's comment after a tale ("[The conclusion of this story ...]"). They
# may span paragraphs and nest brackets, so remove_bracket_blocks scans them by hand.
# ("[1] ..." and "[*] ..." are footnotes, handled as paragraphs.)
_BRACKET_BLOCK_START = re.compile(r"^[ \t]*(?:\[(?=[^\W\d_])|\{(?=Illustration))", re.M)  # 5844: {Illustration: ...}
# Footnote text set as a paragraph of its own: "(1) Grimm.", "[12] Afanasief ...", "[*] Simpleton".
_FOOTNOTE_PARAGRAPH = re.compile(r"\s*(?:\(\d{1,3}\)|\[\d{1,3}\]|\[\*\])\s")
# Footnote marks in the running text: "happily ever after.(1)", "Dummling,[*]", "THE FIEND.[18]".
# Notes inside the running text: "a jogi[FN#1: A Hindu holy man.] of holy", "[Transcriber's note: something?]".
_FOOTNOTE_MARK = re.compile(
    r"\s?\(\d{1,3}\)|\[\d{1,3}\]|\[\*\]|(?<=\S)\*(?=\s|$)|\[(?:FN#\d+|Transcriber.s note)[^\]]*\]"
)
# A picture's caption set as a paragraph without brackets (37952, 54995): "Illustration: Uncle Wiggily and the Eel";
# an editor's note set indented after a tale (29939): "    Note: This tale, like ...".
_CAPTION_PARAGRAPH = re.compile(r"\s*Illustration:|\s+Note:")
# Questions for the reader after a tale (11310): "1. What do you think had become of Subha Datta?"
_QUESTION = re.compile(r"\s*\d{1,2}\.\s")
# Lines that trail after a tale: the number line of the next story (its title line follows), a printer's imprint.
_TRAILER = re.compile(r"(?:story|chapter|part) [ivxlc\d]+\.?|.{0,60}\b(?:temple press|printers)\b.{0,40}", re.I)
_SEPARATOR = re.compile(r"\s*(?:\*\s*){3,}")
# "*****" written without spaces closes the text (Grimm 2591 follows it with an author
# note); spaced asterisks ("*   *   *") are a scene break inside a story.
_HARD_SEPARATOR = re.compile(r"\s*\*{3,}\s*")
# Page furniture of scanned editions standing as a paragraph of its own (see mend_page_breaks).
_CAPTION = re.compile(r"(?:\d{1,3} )?(?:line-art drawing|illustration|frontispiece)", re.I)
_PAGE_NUMBER_PARAGRAPH = re.compile(r"\d{1,3}")
_SENTENCE_END = re.compile(r"[.!?:;\"')\]-]$")
_PAGE_NUMBER = re.compile(r"\s{2,}(?:\d+|[ivxlcdm]+)\.?$", re.I)
_NUMBERING = re.compile(r"^((?:legend|chapter|story|tale|fable|no\.?)\s+)?(\d+\*?\.?|[ivxlcdm]+\.)\s+", re.I)
_ASIDE = re.compile(r"\[[^\]]*\]|\([^)]*\)")  # footnote marks, alternative or original-language titles
SMALL_WORDS = frozenset("a an and as at but by for from in into nor of on or the to upon with".split())

_MAX_HEADING_CHARS = 100
_MAX_HEADING_WORDS = 20
_FUZZY_MIN_RATIO = 0.75  # difflib ratio; "Riquet of the Tuft" vs "Riquet with the Tuft" is 0.84


def parse_book(raw: bytes, book_id: int) -> list[BookStory]:
    """The stories of one downloaded Gutenberg book, in book order."""
    return split_stories(strip_boilerplate(decode_book(raw, book_id), book_id), book_id)


def decode_book(raw: bytes, book_id: int) -> str:
    """UTF-8 bytes -> text without BOM, with LF line endings (Gutenberg serves CRLF)."""
    name = _book_name(book_id)
    content = raw.removeprefix(b"\xef\xbb\xbf")
    if not content.strip():
        raise SourceError(f"{name} is empty: re-download it (delete the file and rerun the download stage)")
    if content.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
        raise SourceError(f"{name} looks like an HTML page, not a plain-text book: "
                          "check data.gutenberg.mirror (it must serve the .txt files)")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        offset = err.start + len(raw) - len(content)  # in the file, BOM included
        raise SourceError(f"{name} is not valid UTF-8 (bad byte at offset {offset}): "
                          "re-download it or fix the mirror (data.gutenberg.mirror)") from err
    return text.replace("\r\n", "\n").replace("\r", "\n")


def strip_boilerplate(text: str, book_id: int) -> str:
    """The book between the ``*** START OF ...`` and ``*** END OF ...`` markers."""
    name = _book_name(book_id)
    start = _START_MARKER.search(text)
    if start is None:
        raise SourceError(f"{name} has no start marker ('*** START OF THE PROJECT GUTENBERG EBOOK ...'): "
                          "it is not a Project Gutenberg plain-text book, or its header was cut off")
    end = _END_MARKER.search(text, start.end())
    if end is None:
        raise SourceError(f"{name} has no end marker ('*** END OF THE PROJECT GUTENBERG EBOOK ...'): "
                          "the download is truncated; re-download it")
    body = _END_NOTICE.sub("", text[start.end():end.start()])
    paragraphs = re.split(r"\n[ \t]*\n", body.strip("\n"))
    while paragraphs and _CREDITS.match(paragraphs[0]):
        paragraphs.pop(0)
    return "\n\n".join(paragraphs).strip("\n")


def split_stories(body: str, book_id: int) -> list[BookStory]:
    """Cut a book body (``strip_boilerplate`` output) into its stories.

    Front matter, back matter, editorial notes and fragments under ``MIN_STORY_WORDS``
    are dropped. Raises ``SourceError`` when no story is found.
    """
    lines = remove_bracket_blocks(body).split("\n")
    headings = _heading_candidates(lines)
    starts, region_end = _story_headings(lines, headings)
    title_keys = {h.key for h in starts}
    ends = sorted({h.line for h in starts}
                  | {h.line for h in headings if h.line < region_end and _is_section_break(h)}
                  | {i for i, line in enumerate(lines[:region_end]) if _HARD_SEPARATOR.fullmatch(line)}
                  | {region_end})
    stories = []
    for heading in starts:
        end = next(e for e in ends if e > heading.line)
        text = story_text(lines[heading.line], lines[heading.line + 1:end], title_keys)
        if word_count(text) >= MIN_STORY_WORDS:
            stories.append(BookStory(title=heading_title(heading.text), text=text))
    if not stories:
        raise SourceError(f"{_book_name(book_id)}: no stories found (no contents entry or heading "
                          f"is followed by {MIN_STORY_WORDS}+ words): is it a story collection?")
    return stories


# --- Headings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Heading:
    line: int  # index into the body's lines
    text: str  # the line as printed, stripped
    key: str  # _title_key: what contents entries and headings are compared by
    number: str  # its numbering ("12", "legend 3"), "" when unnumbered
    blanks_before: int  # blank lines above it: Gutenberg sets a title apart by two or more


@dataclass(frozen=True)
class _Entry:
    key: str
    number: str
    indent: int  # columns of leading space in the contents


def _title_key(text: str) -> tuple[str, str]:
    """(numbering, key) of a heading or contents line, for matching one against the other.

    "XXII.   THE BOY WHO HAD A MOON ON HIS FOREHEAD    156" -> ("xxii", "the boy who had a moon
    on his forehead"); "1 The Frog-King, or Iron Henry (Der Froschkönig ...)" -> ("1",
    "the frog king or iron henry").
    """
    text = _PAGE_NUMBER.sub("", unicodedata.normalize("NFKC", text).rstrip()).strip()
    numbering = _NUMBERING.match(text)
    number = ""
    if numbering:
        number = re.sub(r"\W+", " ", numbering.group(0)).strip().lower()
        text = text[numbering.end():]
    key = re.sub(r"[\W_]+", " ", _ASIDE.sub(" ", text)).strip().casefold()
    return number, key


def _heading_candidates(lines: list[str]) -> list[_Heading]:
    """Short lines standing alone between blank lines: where a title can be.

    A line ending in a page number ("NOTES AND REFERENCES    227") is a contents entry.
    """
    candidates, blank_run = [], 0
    for i, line in enumerate(lines):
        text = line.strip()
        if not text:
            blank_run += 1
            continue
        blanks_before, blank_run = blank_run, 0
        if (i > 0 and not blanks_before) or (i + 1 < len(lines) and lines[i + 1].strip()):
            continue
        if len(text) > _MAX_HEADING_CHARS or _PAGE_NUMBER.search(text):
            continue
        number, key = _title_key(text)
        if key and any(ch.isalpha() for ch in key):
            candidates.append(_Heading(i, text, key, number, blanks_before))
    return candidates


def _looks_like_title(text: str) -> bool:
    """Shaped like a title rather than a line of dialogue or prose."""
    letters = text.strip("_*= \"'“”‘’")  # a title may be quoted (“Tiger! Tiger!”) or marked bold (*KHING-CHU-FU*)
    return (len(text.split()) <= _MAX_HEADING_WORDS and bool(letters) and (letters[0].isupper() or letters[0].isdigit())
            and not letters.endswith((",", ";", ":")))


def _is_section_break(heading: _Heading) -> bool:
    return bool(_NON_STORY_HEADING.fullmatch(heading.key) or _BACK_MATTER_HEADING.fullmatch(heading.key))


def _is_story(heading: _Heading) -> bool:
    return not _is_section_break(heading) and not _SUB_HEADING.fullmatch(heading.key)


def _story_headings(lines: list[str], headings: list[_Heading]) -> tuple[list[_Heading], int]:
    """The headings that start a story, and the line where the stories part of the book ends."""
    contents = _best_contents(lines, headings)
    if contents is not None:
        region_start, entries = contents
        region_end = _back_matter_start(headings, region_start, len(lines))
        in_region = [h for h in headings if region_start <= h.line < region_end]
        starts = [h for h in _match_contents(entries, in_region) if _is_story(h)]
        if len(starts) >= 2:
            return starts, region_end
    region_end = _back_matter_start(headings, 0, len(lines))
    return [h for h in headings if h.line < region_end and _is_fallback_title(h)], region_end


def _is_fallback_title(heading: _Heading) -> bool:
    """Without a contents: a title-shaped, capitalised line set apart by two blank lines.

    Numbered parts ("1. HOW THEY WENT ...") and bare numerals ("II.") belong to the story
    they stand in.
    """
    words = [w for w in re.findall(r"[^\W\d_][\w'’-]*", heading.text) if w.lower() not in SMALL_WORDS]
    capitalised = sum(w[0].isupper() for w in words) >= 0.8 * len(words) if words else False
    return (heading.blanks_before >= 2 and capitalised and _looks_like_title(heading.text) and _is_story(heading)
            and not re.match(r"\d+\.\s|[ivxlc]+\.?$", heading.text, re.I))


def is_back_matter(line: str) -> bool:
    """A heading that ends a story or the stories part of a book: "THE END", "NOTES", an index, a
    publisher's list, the transcriber's notes."""
    key = _title_key(line)[1]
    return bool(_BACK_MATTER_HEADING.fullmatch(key) or _TRANSCRIBER_HEADING.fullmatch(key))


def _back_matter_start(headings: list[_Heading], after: int, default: int) -> int:
    return next((h.line for h in headings if h.line >= after and _BACK_MATTER_HEADING.fullmatch(h.key)), default)


# --- Table of contents ----------------------------------------------------------------


def _best_contents(lines: list[str], headings: list[_Heading]) -> tuple[int, list[_Entry]] | None:
    """(line after the contents, its entries) for the contents whose entries best match headings.

    Some books have two lists (22373: chapters under CONTENTS, then a STORY-LIST); the one
    naming the most headings after it is the one that names the stories. A contents heading
    need not stand alone ("LIST OF CHAPTERS" right above a "PAGE" column heading).
    """
    best, best_hits = None, 0
    for start, line in enumerate(lines):
        if len(line) > _MAX_HEADING_CHARS or not _MAYBE_CONTENTS.search(line):
            continue  # (a cheap test first: most lines of a book are prose)
        if not _CONTENTS_HEADING.fullmatch(_title_key(line)[1]):
            continue
        end, entries = _read_contents(lines, start + 1)
        later_keys = {h.key for h in headings if h.line >= end}
        hits = sum(entry.key in later_keys for entry in entries)
        if hits > best_hits:
            best, best_hits = (end, entries), hits
    return best


def _read_contents(lines: list[str], start: int) -> tuple[int, list[_Entry]]:
    """The entries of the contents starting at ``start``, and the line after its last entry.

    The contents ends at two blank lines in a row or at a row of asterisks. A title wrapped
    onto a deeper-indented line that carries the page number is joined back together;
    sub-entries ("1. HOW THEY WENT ...", "FIRST STORY") and repeats are left out.
    """
    rows: list[tuple[int, str]] = []  # (indent, text) per entry, wrapped titles joined
    blank_run, i = 0, start
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            blank_run += 1
            if blank_run >= 2 and rows:
                break
        elif _SEPARATOR.fullmatch(line):
            if rows:
                break
        else:
            indent = len(line) - len(line.lstrip())
            wraps = (blank_run == 0 and rows and indent > rows[-1][0] and _PAGE_NUMBER.search(line)
                     and not _PAGE_NUMBER.search(rows[-1][1]))
            if wraps:
                rows[-1] = (rows[-1][0], f"{rows[-1][1]} {line.strip()}")
            else:
                rows.append((indent, line.strip()))
            blank_run = 0
        i += 1
    entries: list[_Entry] = []
    for indent, text in rows:
        number, key = _title_key(text)
        if not key or key == "page" or len(key) > _MAX_HEADING_CHARS or (entries and key == entries[-1].key):
            continue
        nested = entries and indent > entries[-1].indent and re.match(r"\d+\.\s", text)
        if not nested and not _SUB_HEADING.fullmatch(key):
            entries.append(_Entry(key, number, indent))
    return i, entries


def _match_contents(entries: list[_Entry], headings: list[_Heading]) -> list[_Heading]:
    """The heading of each contents entry found in the body, in book order.

    1. Exact key matches, walking the contents backwards and taking for each entry its last
       occurrence before the next entry's heading: a title also printed in a list of
       illustrations, or as a half-title just before the real heading, resolves to the
       real heading.
    2. Entries still missing are looked for between their neighbours' headings, by
       numbering or by similar wording ("8 The Strange Musician" is "8 The Wonderful
       Musician", "Riquet of the Tuft" is "Riquet with the Tuft").
    3. Entries still missing may be out of contents order (28 swaps a few fables): an
       unused exact match after the first story heading is taken.
    """
    titles = [h for h in headings if _looks_like_title(h.text)]  # not a verse line repeating a title
    by_key: dict[str, list[_Heading]] = defaultdict(list)
    for heading in titles:
        by_key[heading.key].append(heading)

    found: list[_Heading | None] = [None] * len(entries)
    past_end = limit = titles[-1].line + 1 if titles else 0
    for index in range(len(entries) - 1, -1, -1):
        before = [h for h in by_key.get(entries[index].key, ()) if h.line < limit]
        if before:
            found[index] = before[-1]
            limit = before[-1].line

    for index, entry in enumerate(entries):
        if found[index] is None:
            low = max((h.line for h in found[:index] if h), default=-1)
            high = min((h.line for h in found[index + 1:] if h), default=past_end)
            found[index] = _closest_heading(entry, [h for h in titles if low < h.line < high])

    used = {h.line for h in found if h}
    first = min(used, default=0)
    for index, entry in enumerate(entries):
        match = next((h for h in by_key.get(entry.key, ()) if h.line > first and h.line not in used), None)
        if found[index] is None and match is not None:
            found[index] = match
            used.add(match.line)
    return sorted((h for h in found if h), key=lambda h: h.line)


def _closest_heading(entry: _Entry, headings: list[_Heading]) -> _Heading | None:
    """The heading in ``headings`` that best fits a contents entry not found verbatim."""
    best, best_ratio = None, _FUZZY_MIN_RATIO
    for heading in headings:
        if entry.number and heading.number:
            if entry.number == heading.number:
                return heading
            continue
        ratio = SequenceMatcher(None, entry.key, heading.key).ratio()
        if ratio >= best_ratio:
            best, best_ratio = heading, ratio
    return best


# --- Story text ---------------------------------------------------------------------------


def remove_bracket_blocks(text: str) -> str:
    """Drop [Illustration ...], [Footnote ...], {Illustration ...} and similar blocks, nested brackets included.

    A bracket that is never closed is left alone rather than swallowing the rest of the book.
    """
    pieces, pos = [], 0
    for match in _BRACKET_BLOCK_START.finditer(text):
        if match.start() < pos:
            continue  # inside a block already removed
        depth, end = 0, match.end() - 1
        while end < len(text):
            depth += {"[": 1, "]": -1, "{": 1, "}": -1}.get(text[end], 0)
            end += 1
            if depth == 0:
                break
        if depth:
            continue
        pieces.append(text[pos:match.start()])
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def story_text(heading: str, lines: list[str], title_keys: set[str]) -> str:
    """Normalised text of one story from its heading line and the lines under it."""
    paragraphs = [p for p in _paragraphs(lines) if not _is_apparatus(p, title_keys)]
    # Tales quoted inside commentary (22373) are set indented, heading included; the
    # commentary that follows a tale is not, so such a tale ends at its first unindented
    # paragraph. (An indented verse under an unindented heading is only an epigraph.)
    if paragraphs and _is_indented([heading]) and _is_indented(paragraphs[0]):
        cut = next((i for i, p in enumerate(paragraphs) if not _is_indented(p)), len(paragraphs))
        paragraphs = paragraphs[:cut]
    paragraphs = _without_questions_and_trailers(paragraphs)
    text = "\n\n".join("\n".join(p) for p in paragraphs)
    return mend_page_breaks(normalize_text(_FOOTNOTE_MARK.sub("", text)))


def mend_page_breaks(text: str) -> str:
    """Normalised text without the page furniture of a scanned edition: picture captions standing alone
    ("Line-Art Drawing"), and page numbers that cut a sentence in two, whose halves are joined again
    ("...who ruled that part of / 9 / had forbidden any other ..."; 54)."""
    kept: list[str] = []
    furniture = False  # a caption or page number was dropped since the last kept paragraph
    for block in text.split("\n\n"):
        if _CAPTION.fullmatch(block) or (_PAGE_NUMBER_PARAGRAPH.fullmatch(block) and kept):
            furniture = True
        elif furniture and block[:1].islower() and not _SENTENCE_END.search(kept[-1]):
            kept[-1] = f"{kept[-1]} {block}"
        else:
            kept.append(block)
            furniture = False
    return "\n\n".join(kept)


def _without_questions_and_trailers(paragraphs: list[list[str]]) -> list[list[str]]:
    """The paragraphs without numbered questions for the reader (11310: "1. What do you think had become of
    Subha Datta?") and without what trails after a tale: the next story's number ("STORY II"), an imprint."""
    kept = [p for p in paragraphs if not (_QUESTION.match(p[0]) and " ".join(p).rstrip().endswith("?"))]
    while kept and len(kept[-1]) <= 4 and _TRAILER.fullmatch(" ".join(line.strip() for line in kept[-1])):
        kept.pop()
    return kept


def _paragraphs(lines: list[str]) -> list[list[str]]:
    paragraphs, current = [], []
    for line in lines:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def _is_apparatus(paragraph: list[str], title_keys: set[str]) -> bool:
    """Footnotes, editor's notes, scene-break asterisks and repeated titles are not story text."""
    return (_FOOTNOTE_PARAGRAPH.match(paragraph[0]) is not None or _CAPTION_PARAGRAPH.match(paragraph[0]) is not None
            or (len(paragraph) == 1 and (_SEPARATOR.fullmatch(paragraph[0]) is not None
                                         or _title_key(paragraph[0])[1] in title_keys)))


def _is_indented(paragraph: list[str]) -> bool:
    return all(line[:1].isspace() for line in paragraph)


def heading_title(heading: str) -> str:
    """Human title in Title Case from a heading line: "THE FIEND.[18]" -> "The Fiend".

    Small words stay lower case unless they open the title or follow a full stop
    ("The Master Cat; or, Puss in Boots", "The Water-Lily. The Gold-Spinners"); a heading
    in mixed case keeps its inner capitals ("McDonald").
    """
    text = _NUMBERING.sub("", _ASIDE.sub(" ", normalize_text(heading)))
    text = re.sub(r"\s+", " ", text).strip(" .:*=")
    if len(text) > 2 and text[0] == text[-1] and text[0] in "\"'":  # a quoted title: "Tiger! Tiger!"
        text = text[1:-1].strip(" .,")
    shouting = text.upper() == text
    pieces, opens_phrase = [], True
    for piece in re.split(r"( |-)", text):
        if piece in ("", " ", "-"):
            pieces.append(piece)
            continue
        word = piece.lower() if shouting else piece
        small = re.sub(r"\W", "", word).lower() in SMALL_WORDS
        pieces.append(word.lower() if small and not opens_phrase else _capitalize(word))
        opens_phrase = word.endswith((".", ":", "!", "?"))
    return "".join(pieces)


def _capitalize(word: str) -> str:
    for index, ch in enumerate(word):
        if ch.isalpha():
            return word[:index] + ch.upper() + word[index + 1:]
    return word


def _book_name(book_id: int) -> str:
    return f"Gutenberg book {book_id} (pg{book_id}.txt)"
