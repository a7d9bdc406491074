"""Story records from the downloaded Gutenberg books (the ``download`` stage's folder).

Every book the pipeline knows is declared once, in :data:`CATALOGUE`: its group (for the per-book
and per-group tables), the kind of records it holds and its style. The kind picks the splitter:

* ``tales``: a collection (fairy tales, fables); one record per tale, found through the book's
  contents (:func:`aitale.data.gutenberg.split_stories`).
* ``stories``: a book of stories that each stand alone (Mother West Wind, Uncle Wiggily, the Jungle
  Books); one record per story, cut at the numbered headings
  (:func:`aitale.data.chapters.split_numbered`), else found through the contents.
* ``chapters``: one story told in chapters (a novel, a Burgess "Adventures of"); one record per
  chapter, titled by the chapter's title, and every chapter of the book shares one ``tale`` key, so
  a book is never on both sides of the train/test line.
* ``story``: a picture book that is one story (Potter, The Velveteen Rabbit); one record.

The age group comes from each record's reading grade; themes are left empty (``themes_source``
"none") for a judge to fill in later.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from aitale.data.chapters import split_numbered, whole_story
from aitale.data.gutenberg import BookStory, decode_book, split_stories, strip_boilerplate
from aitale.data.readability import age_group_for
from aitale.data.records import Story, slugify
from aitale.data.text import word_count
from aitale.errors import SourceError
from aitale.labels import STYLES

log = logging.getLogger(__name__)

KINDS = ("tales", "stories", "chapters", "story")

# One line per book: Gutenberg id, group, kind, style, and the book (for people; the title records carry
# comes from the book's own header). Groups: lang (Lang's coloured fairy books), andersen, world (fairy
# tales of many countries, Grimm and Perrault among them), fables, burgess, garis, picture (one-story
# picture books), novels. Burgess's "Adventures of" books are one story in chapters; the Mother West Wind
# books and every Garis book are stories that each stand alone (one per night), and so are Kipling's.
_CATALOGUE_TABLE = """
28     fables    tales     fable       The Fables of Aesop (Vernon Jones)
11339  fables    tales     fable       Aesop's Fables (Townsend)
15946  fables    tales     fable       The Original Fables of La Fontaine
503    lang      tales     fairy_tale  The Blue Fairy Book
640    lang      tales     fairy_tale  The Yellow Fairy Book
540    lang      tales     fairy_tale  The Red Fairy Book
7277   lang      tales     fairy_tale  The Green Fairy Book
641    lang      tales     fairy_tale  The Violet Fairy Book
2435   lang      tales     fairy_tale  The Crimson Fairy Book
3282   lang      tales     fairy_tale  The Brown Fairy Book
27826  lang      tales     fairy_tale  The Olive Fairy Book
5615   lang      tales     fairy_tale  The Pink Fairy Book
6746   lang      tales     fairy_tale  The Grey Fairy Book
3454   lang      tales     fairy_tale  The Lilac Fairy Book
36532  lang      tales     fairy_tale  The Orange Fairy Book
1597   andersen  tales     fairy_tale  Andersen's Fairy Tales
2591   world     tales     fairy_tale  Grimms' Fairy Tales (Taylor & Edwardes)
5314   world     tales     fairy_tale  Household Tales by Brothers Grimm (Hunt)
7128   world     tales     fairy_tale  Indian Fairy Tales (Jacobs)
17208  world     tales     fairy_tale  The Tales of Mother Goose (Perrault, ed. Welsh)
22373  world     tales     fairy_tale  Russian Fairy Tales (Ralston)
29021  world     tales     fairy_tale  The Fairy Tales of Charles Perrault
4018   world     tales     fairy_tale  Japanese Fairy Tales (Ozaki)
29337  world     tales     fairy_tale  Japanese Fairy World (Griffis)
32202  world     tales     fairy_tale  The Irish Fairy Book
37532  world     tales     fairy_tale  The Scottish Fairy Book
9368   world     tales     fairy_tale  Welsh Fairy Tales
38070  world     tales     fairy_tale  The Norwegian Fairy Book
8653   world     tales     fairy_tale  East o' the Sun and West o' the Moon
44622  world     tales     fairy_tale  In the Days of Giants (Norse)
29939  world     tales     fairy_tale  The Chinese Fairy Book
11310  world     tales     fairy_tale  Hindu Tales from the Sanskrit
43212  world     tales     fairy_tale  Fairy Tales from Spain
32217  world     tales     fairy_tale  Czechoslovak Fairy Tales
7871   world     tales     fairy_tale  Dutch Fairy Tales for Young Folks
4357   world     tales     fairy_tale  American Fairy Tales (Baum)
5312   world     tales     fairy_tale  Mother Goose in Prose (Baum)
2557   burgess   stories   bedtime     Old Mother West Wind
20877  burgess   stories   bedtime     Mother West Wind's Children
14958  burgess   stories   bedtime     Mother West Wind 'Why' Stories
21286  burgess   stories   bedtime     Mother West Wind 'How' Stories
1825   burgess   chapters  bedtime     The Adventures of Reddy Fox
46866  burgess   chapters  bedtime     The Adventures of Peter Cottontail
21015  burgess   chapters  bedtime     The Adventures of Jimmy Skunk
5844   burgess   chapters  bedtime     The Adventures of Johnny Chuck
14732  burgess   chapters  bedtime     The Adventures of Unc' Billy Possum
25301  burgess   chapters  bedtime     The Adventures of Danny Meadow Mouse
14375  burgess   chapters  bedtime     The Adventures of Grandfather Frog
37952  burgess   chapters  bedtime     The Adventures of Chatterer the Red Squirrel
43596  burgess   chapters  bedtime     The Adventures of Sammy Jay
22816  burgess   chapters  bedtime     The Adventures of Buster Bear
15521  burgess   chapters  bedtime     The Adventures of Prickly Porky
5110   burgess   chapters  bedtime     The Adventures of Jerry Muskrat
46951  burgess   chapters  bedtime     The Adventures of Bobby Coon
12630  burgess   chapters  bedtime     The Adventures of Old Mr. Toad
2441   burgess   chapters  bedtime     The Burgess Animal Book for Children
3074   burgess   chapters  bedtime     The Burgess Bird Book for Children
15281  garis     stories   bedtime     Uncle Wiggily's Adventures
15282  garis     stories   bedtime     Uncle Wiggily's Travels
17807  garis     stories   bedtime     Uncle Wiggily in the Woods
42574  garis     stories   bedtime     Uncle Wiggily in Wonderland
23213  garis     stories   bedtime     Uncle Wiggily and Old Mother Hubbard
54995  garis     stories   bedtime     Uncle Wiggily's Fortune
11156  garis     stories   bedtime     Buddy and Brighteyes Pigg
13087  garis     stories   bedtime     Sammie and Susie Littletail
14838  picture   story     bedtime     The Tale of Peter Rabbit
14407  picture   story     bedtime     The Tale of Benjamin Bunny
14872  picture   story     bedtime     The Tale of Squirrel Nutkin
14814  picture   story     bedtime     The Tale of Jemima Puddle-Duck
11757  picture   story     bedtime     The Velveteen Rabbit
2781   novels    stories   fable       Just So Stories
236    novels    stories   fairy_tale  The Jungle Book
1937   novels    stories   fairy_tale  The Second Jungle Book
55     novels    chapters  fairy_tale  The Wonderful Wizard of Oz
54     novels    chapters  fairy_tale  The Marvelous Land of Oz
486    novels    chapters  fairy_tale  Ozma of Oz
420    novels    chapters  fairy_tale  Dorothy and the Wizard in Oz
485    novels    chapters  fairy_tale  The Road to Oz
517    novels    chapters  fairy_tale  The Emerald City of Oz
955    novels    chapters  fairy_tale  The Patchwork Girl of Oz
956    novels    chapters  fairy_tale  Tik-Tok of Oz
957    novels    chapters  fairy_tale  The Scarecrow of Oz
11     novels    chapters  fairy_tale  Alice's Adventures in Wonderland
12     novels    chapters  fairy_tale  Through the Looking-Glass
16     novels    chapters  fairy_tale  Peter Pan
1332   novels    chapters  fairy_tale  Peter Pan in Kensington Gardens
289    novels    chapters  bedtime     The Wind in the Willows
"""


@dataclass(frozen=True)
class Book:
    id: int
    group: str
    kind: str  # one of KINDS
    style: str  # one of aitale.labels.STYLES
    name: str


def _catalogue(table: str) -> dict[int, Book]:
    books: dict[int, Book] = {}
    for line in table.strip().splitlines():
        book_id, group, kind, style, name = line.split(maxsplit=4)
        book = Book(int(book_id), group, kind, style, name)
        if book.kind not in KINDS or book.style not in STYLES or book.id in books:
            raise ValueError(f"catalogue line {line!r}: kind in {KINDS}, style in {STYLES}, each id once")
        books[book.id] = book
    return books


CATALOGUE = _catalogue(_CATALOGUE_TABLE)


def catalogued(book_id: int) -> Book:
    """The catalogue's entry for a book; a clear error for a book nobody declared."""
    if book_id not in CATALOGUE:
        raise SourceError(
            f"book {book_id} is not in the catalogue (aitale/data/books.py): declare its group, kind "
            f"({', '.join(KINDS)}) and style ({', '.join(STYLES)}) there, or drop it from data.gutenberg.books"
        )
    return CATALOGUE[book_id]


def split_book(raw: bytes, book: Book, title: str) -> list[BookStory]:
    """The records of one downloaded book, by its kind (``title``: the book's, for a one-story book)."""
    body = strip_boilerplate(decode_book(raw, book.id), book.id)
    if book.kind == "story":
        return whole_story(body, title, book.id)
    numbered = split_numbered(body, book.id)
    if book.kind in ("stories", "chapters") and numbered is not None:
        return numbered
    try:
        listed = split_stories(body, book.id)
    except SourceError:
        if numbered is None:
            raise
        return numbered
    return numbered if numbered is not None and _finds_more(numbered, listed) else listed


def _finds_more(numbered: list[BookStory], listed: list[BookStory]) -> bool:
    """Numbered headings beat the contents in a collection only where the contents names sections, not tales
    (29939 lists 8 sections of 74 numbered tales), never where the numbers are a tale's own parts or notes."""
    words = lambda records: sum(word_count(r.text) for r in records)  # noqa: E731
    return len(numbered) >= 1.5 * len(listed) + 1 and words(numbered) >= 0.9 * words(listed)


def load_books(folder: str | Path) -> list[Story]:
    """One record per tale, story or chapter of each book listed in ``manifest.json``, in manifest order."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["books"]
    except (OSError, ValueError, KeyError) as err:
        raise SourceError(f"{folder}: no readable manifest.json ({err}); run the download stage first") from None
    books = [catalogued(entry["id"]) for entry in manifest]  # every unknown book fails before any work
    stories = []
    for entry, book in zip(tqdm(manifest, desc="split books", unit="book", mininterval=5, disable=not manifest), books):
        path = folder / f"pg{book.id}.txt"
        if not path.exists():
            raise SourceError(f"book {book.id}: {path} is missing; rerun the download stage")
        records = split_book(path.read_bytes(), book, entry["title"])
        log.info("book %d (%s): %d %s", book.id, entry["title"], len(records), book.kind)
        stories += [_story(record, book, entry["title"]) for record in records]
    return _unique_ids(stories)


def _story(record: BookStory, book: Book, book_title: str) -> Story:
    key = f"pg{book.id}/{slugify(record.title)}"
    return Story(
        id=key,
        title=record.title,
        text=record.text,
        source="gutenberg",
        collection=slugify(book_title),
        age_group=age_group_for(record.text),
        themes=[],
        style=book.style,
        themes_source="none",  # no theme is given: a judge may predict them later
        tale=f"pg{book.id}" if book.kind == "chapters" else key,
    )


def book_id_of(record_id: str) -> int | None:
    """The Gutenberg id in a book record's id ("pg503/the-bronze-ring/part-2" -> 503); None for a custom story."""
    head = record_id.split("/", 1)[0]
    return int(head[2:]) if head.startswith("pg") and head[2:].isdigit() else None


def retold(story: Story) -> bool:
    """Whether other books may tell ``story`` again (dedupe compares only these): the custom stories and the
    tales of collections, not the stories of a series or the chapters of a novel, which share names only."""
    book = book_id_of(story.id)
    return book is None or book not in CATALOGUE or CATALOGUE[book].kind == "tales"


def _unique_ids(stories: list[Story]) -> list[Story]:
    """Books repeat titles ("The Fox and the Crow" twice in one Aesop): number the repeats."""
    seen: dict[str, int] = {}
    for story in stories:
        count = seen.get(story.id, 0)
        seen[story.id] = count + 1
        if count:
            renamed = f"{story.id}-{count + 1}"
            story.tale = renamed if story.tale == story.id else story.tale
            story.id = renamed
    return stories
