"""Gutenberg books -> stories: the ten reference books, the bad-input errors, normalisation."""

import re
import time

import pytest

from aitale.data.gutenberg import BookStory, decode_book, parse_book, split_stories, strip_boilerplate
from aitale.data.normalize import normalize_text
from aitale.data.text import word_count
from aitale.errors import SourceError
from tests.support.repo import manifest

BLUE_FAIRY, GRIMM, AESOP = 503, 2591, 28
INDIAN, RUSSIAN, PERRAULT, HOUSEHOLD = 7128, 22373, 29021, 5314

# Licence, front matter and editorial markup that must never reach a story's text.
LEFTOVERS = re.compile(
    r"Project Gutenberg|gutenberg\.org|CONTENTS|Illustration|ILLUSTRATION|Transcriber|TRANSCRIBER|E-text prepared"
    r"|Produced by|Footnote|FOOTNOTE|Frontispiece|\[\d+\]|\[\*\]|\(\d\)|_|\r|\ufeff"
)
# Fewest stories each book must give: a drop means a contents entry stopped matching.
AT_LEAST = {28: 70, 503: 36, 640: 46, 2591: 60, 5314: 205, 7128: 28, 11339: 230, 17208: 8, 22373: 50, 29021: 10}


@pytest.fixture(scope="module")
def parsed(corpus_dir):
    """Every reference book parsed once, with the total wall time."""
    raws = {book: (corpus_dir / f"pg{book}.txt").read_bytes() for book in sorted(manifest(corpus_dir))}
    started = time.perf_counter()
    stories = {book: parse_book(raw, book) for book, raw in raws.items()}
    return stories, time.perf_counter() - started


def titles(stories: list[BookStory]) -> list[str]:
    return [story.title for story in stories]


# --- The ten reference books -----------------------------------------------------------------


def test_blue_fairy_book_gives_its_37_stories(parsed):
    stories, _ = parsed
    assert abs(len(stories[BLUE_FAIRY]) - 37) <= 1, titles(stories[BLUE_FAIRY])
    assert titles(stories[BLUE_FAIRY])[:2] == ["The Bronze Ring", "Prince Hyacinth and the Dear Little Princess"]
    assert titles(stories[BLUE_FAIRY])[-1] == "The Red Etin"


def test_grimm_gives_its_62_stories(parsed):
    stories, _ = parsed
    assert abs(len(stories[GRIMM]) - 62) <= 2, titles(stories[GRIMM])


@pytest.mark.parametrize("book", sorted(AT_LEAST))
def test_every_book_gives_titled_clean_stories_of_tale_length(parsed, book):
    stories, _ = parsed
    assert len(stories[book]) >= AT_LEAST[book], titles(stories[book])
    for story in stories[book]:
        assert story.title.strip() and story.title[0].isupper(), story
        assert story.title == story.title.strip() and "  " not in story.title
        assert word_count(story.text) >= 80, story.title
        assert not LEFTOVERS.search(story.text), (story.title, LEFTOVERS.search(story.text))
        assert normalize_text(story.text) == story.text, story.title


def test_all_ten_books_parse_in_under_ten_seconds(parsed):
    stories, seconds = parsed
    assert len(stories) == 10
    assert seconds < 10, f"{seconds:.1f}s"


def test_parsing_is_deterministic(parsed, corpus_dir):
    stories, _ = parsed
    assert parse_book((corpus_dir / f"pg{GRIMM}.txt").read_bytes(), GRIMM) == stories[GRIMM]


def test_front_and_back_matter_are_dropped(parsed):
    stories, _ = parsed
    everything = {book: " ".join(s.text for s in tales) for book, tales in stories.items()}
    assert "HURRAH" not in everything[AESOP] and "A Short History" not in titles(stories[AESOP])
    assert "Preface" not in titles(stories[AESOP])
    assert "Wilhelm (1786-1859)" not in everything[GRIMM]  # the author note after "*****"
    assert "Uniform with this Volume" not in everything[PERRAULT]
    assert "The Editor thinks that children" not in everything[640]  # the Yellow Fairy Book's preface


def test_notes_that_repeat_the_titles_are_not_stories(parsed):
    stories, _ = parsed
    assert titles(stories[INDIAN])[-1] == "The Pigeon and the Crow"
    assert not any("Notes" in title for title in titles(stories[INDIAN]))
    assert len(titles(stories[INDIAN])) == len(set(titles(stories[INDIAN])))


def test_tales_are_cut_out_of_the_commentary(parsed):
    stories, _ = parsed
    russian = {story.title: story.text for story in stories[RUSSIAN]}
    assert russian["The Fiend"].startswith("In a certain country there lived an old couple")
    assert russian["The Fiend"].endswith("they all lived together long and happily.")
    assert not any("Afanasief" in text for text in russian.values())  # the scholar's sources


def test_sub_headings_stay_in_their_story(parsed):
    stories, _ = parsed
    grimm = {story.title: story.text for story in stories[GRIMM]}
    assert "FIRST STORY" in grimm["The Wedding of Mrs Fox"] and "SECOND STORY" in grimm["The Wedding of Mrs Fox"]
    chanticleer = grimm["The Adventures of Chanticleer and Partlet"]
    assert "2. HOW CHANTICLEER AND PARTLET WENT TO VISIT MR KORBES" in chanticleer
    assert not {"First Story", "Second Story"} & set(grimm)
    blue = {story.title: story.text for story in stories[BLUE_FAIRY]}
    assert "CHAPTER V" in blue["A Voyage to Lilliput"]


def test_headings_that_differ_from_the_contents_are_found(parsed):
    stories, _ = parsed
    household = titles(stories[HOUSEHOLD])
    assert "The Wonderful Musician" in household  # the contents says "8 The Strange Musician (...)"
    assert not any("(" in title for title in household)  # German titles stay out
    assert "Riquet with the Tuft" in titles(stories[17208])  # contents: "RIQUET OF THE TUFT"
    assert "How Sun, Moon, and Wind Went Out to Dinner" in titles(stories[INDIAN])


def test_footnotes_are_removed(parsed):
    stories, _ = parsed
    bronze_ring = stories[BLUE_FAIRY][0].text
    assert bronze_ring.endswith("upon the mule's back.")  # not "...back.(1)" nor "(1) Traditions Populaires ..."
    assert "Traditions Populaires" not in bronze_ring


def test_a_book_without_contents_falls_back_to_headings(corpus_dir):
    raw = (corpus_dir / f"pg{BLUE_FAIRY}.txt").read_bytes().replace(b"\nCONTENTS\n", b"\n\n")
    stories = parse_book(raw, BLUE_FAIRY)
    assert abs(len(stories) - 37) <= 1, titles(stories)
    assert "A Voyage to Lilliput" in titles(stories) and "Chapter I" not in titles(stories)


def test_crlf_and_lf_books_give_the_same_stories(parsed, corpus_dir):
    stories, _ = parsed
    raw = (corpus_dir / f"pg{GRIMM}.txt").read_bytes()
    assert b"\r\n" not in raw
    assert parse_book(raw.replace(b"\n", b"\r\n"), GRIMM) == stories[GRIMM]
    assert parse_book(raw.replace(b"\n", b"\r"), GRIMM) == stories[GRIMM]


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"\xef\xbb\xbf", b"  \r\n\n\t "], ids=["empty", "bom-only", "whitespace"])
def test_empty_file_is_rejected(tmp_path, raw):
    path = tmp_path / "pg7.txt"
    path.write_bytes(raw)
    with pytest.raises(SourceError, match=r"book 7 .*empty.*re-download"):
        decode_book(path.read_bytes(), 7)


def test_invalid_utf8_names_the_byte_offset():
    raw = b"\xef\xbb\xbfThe Project Gutenberg eBook\n\xff\xfe broken bytes\n"
    with pytest.raises(SourceError, match=r"book 7 .*not valid UTF-8.*offset 31.*re-download.*mirror"):
        decode_book(raw, 7)


@pytest.mark.parametrize(
    "raw",
    [
        b"<!DOCTYPE html>\n<html><head><title>Not found</title></head><body>404</body></html>\n",
        b"\xef\xbb\xbf\r\n  <HTML><body>Moved</body></HTML>",
    ],
    ids=["doctype", "bom-and-upper-case"],
)
def test_html_page_saved_as_txt_is_rejected(raw):
    with pytest.raises(
        SourceError,
        match=r"book 7 .*looks like an HTML page, not a plain-text book: "
        r"check data\.gutenberg\.mirror",
    ):
        decode_book(raw, 7)


def test_truncated_download_without_end_marker_is_rejected(tmp_path, corpus_dir):
    raw = (corpus_dir / f"pg{AESOP}.txt").read_bytes()
    path = tmp_path / f"pg{AESOP}.txt"
    path.write_bytes(raw[: raw.index(b"*** END OF")])
    with pytest.raises(SourceError, match=r"book 28 .*end marker.*truncated"):
        parse_book(path.read_bytes(), AESOP)


def test_text_without_start_marker_is_rejected():
    with pytest.raises(SourceError, match=r"book 7 .*start marker"):
        strip_boilerplate("Just some text\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\n", 7)


def test_a_body_without_stories_is_rejected():
    with pytest.raises(SourceError, match=r"book 7 .*no stories found"):
        split_stories("CONTENTS\n\n\n     THE END\n\n\n\nTHE END\n\n\nA line.\n", 7)


# --- Decoding and boilerplate ---------------------------------------------------------------

SMALL_BOOK = """\ufeffThe Project Gutenberg eBook of Two Tales\r
\r
Title: Two Tales\r
\r
*** START OF THE PROJECT GUTENBERG EBOOK TWO TALES ***\r
\r
Produced by A. Volunteer\r
\r
\r
\r
TWO TALES\r
\r
\r
CONTENTS\r
\r
     THE FOX\r
     THE OWL\r
     NOTES\r
\r
\r
\r
PREFACE\r
\r
A preface about these tales, which are not tales themselves.\r
\r
\r
\r
THE FOX(1)\r
\r
\r
{fox}\r
\r
[Illustration: The fox\r
  [drawn by hand]]\r
\r
{fox}.[2]\r
\r
(1) From an old book.\r
\r
\r
\r
THE OWL\r
\r
\r
[Footnote 3: Nothing.]\r
\r
{owl}\r
\r
\r
\r
NOTES\r
\r
\r
THE FOX. A note on the fox, which repeats the title.\r
\r
End of the Project Gutenberg EBook of Two Tales\r
\r
*** END OF THE PROJECT GUTENBERG EBOOK TWO TALES ***\r
Licence text.\r
"""


def small_book() -> bytes:
    fox = "The fox ran " + "far and " * 30 + "home"
    owl = "The owl sat\non a branch " + "and watched " * 40 + "the night"
    return SMALL_BOOK.format(fox=fox, owl=owl).encode("utf-8")


def test_decode_strips_the_bom_and_crlf():
    text = decode_book(small_book(), 7)
    assert text.startswith("The Project Gutenberg eBook") and "\r" not in text


def test_strip_boilerplate_keeps_only_the_book():
    body = strip_boilerplate(decode_book(small_book(), 7), 7)
    assert body.startswith("TWO TALES") and body.endswith("which repeats the title.")
    assert "Licence" not in body and "Produced by" not in body and "End of the Project" not in body


def test_a_small_book_splits_into_its_tales():
    stories = parse_book(small_book(), 7)
    assert titles(stories) == ["The Fox", "The Owl"]
    fox, owl = (story.text for story in stories)
    assert fox.startswith("The fox ran far") and fox.endswith("home.") and fox.count("\n\n") == 1
    assert "[" not in fox and "(1)" not in fox and "old book" not in fox
    assert owl.startswith("The owl sat on a branch and") and "note on the fox" not in owl


# --- Normalisation ---------------------------------------------------------------------------


def test_normalize_text_canonical_punctuation():
    raw = "\ufeff\u201cWell,\u201d said the \u2018fox\u2019\u2014quite\u2013so\u2026 \u00c6sop\u200b's _italic_ "
    raw += "caf\u00e9"
    assert normalize_text(raw) == "\"Well,\" said the 'fox'--quite--so... Aesop's italic café"


def test_normalize_text_unwraps_paragraphs():
    raw = "  First line\nwrapped   here.\r\n\r\n\n   \nSecond\tparagraph\n\n"
    assert normalize_text(raw) == "First line wrapped here.\n\nSecond paragraph"
    assert normalize_text(normalize_text(raw)) == normalize_text(raw)
    assert normalize_text(" \n\n ") == ""


def test_word_count_counts_words_not_punctuation():
    assert word_count("The fox -- quick, and ... sly! 1st") == 6
    assert word_count("") == 0
