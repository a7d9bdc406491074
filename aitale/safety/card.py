"""The counts tables of the labelled passages' data card (data/safety/README.md), regenerated from the passages.

The tables sit between two marker lines of the card; everything else in the card is hand-written
and left as it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from aitale.errors import SourceError
from aitale.io import write_text
from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES
from aitale.safety.labelled import KIND_AGES, Passage

BEGIN, END = "<!-- counts: begin (python -m aitale.safety.merge) -->", "<!-- counts: end -->"
PARTS = (  # the columns: (heading, which passages)
    ("first set train", lambda p: p.untouched and p.split == "train"),
    ("first set test (untouched)", lambda p: p.untouched and p.split == "test"),
    ("new train", lambda p: not p.untouched and p.split == "train"),
    ("new test", lambda p: not p.untouched and p.split == "test"),
    ("all train", lambda p: p.split == "train"),
    ("all test", lambda p: p.split == "test"),
    ("all", lambda p: True),
)


def _origin(p: Passage) -> str:
    if p.source == "written":
        return "written"
    return "library book" if p.source.startswith("library:") else "reference book"


def _rows() -> list[tuple[str, Callable[[Passage], bool]]]:
    rows: list[tuple[str, Callable[[Passage], bool]]] = [
        ("**all passages**", lambda p: True),
        ("acceptable for 3-5", lambda p: not p.unsafe_for("3-5")),
        ("not acceptable for 3-5", lambda p: p.unsafe_for("3-5")),
    ]
    rows += [(f"youngest = `{a}`", lambda p, a=a: p.youngest == a) for a in AGE_GROUPS]
    rows += [("youngest = `null`", lambda p: p.youngest is None)]
    rows += [(f"kind `{k}`", lambda p, k=k: p.kind == k) for k in KIND_AGES]
    rows += [(f"category `{c}` (any passage)", lambda p, c=c: c in p.categories) for c in SAFETY_CATEGORIES]
    rows += [
        (f"category `{c}`, not acceptable for 3-5", lambda p, c=c: c in p.categories and p.unsafe_for("3-5"))
        for c in SAFETY_CATEGORIES
    ]
    rows += [("no category", lambda p: not p.categories), ("more than one category", lambda p: len(p.categories) > 1)]
    rows += [(f"source: {o}", lambda p, o=o: _origin(p) == o) for o in ("reference book", "library book", "written")]
    return rows


def counts(passages: Sequence[Passage]) -> str:
    """The card's counts section (markdown)."""
    parts = [[p for p in passages if belongs(p)] for _, belongs in PARTS]
    lines = [
        "| group | " + " | ".join(name for name, _ in PARTS) + " |",
        "| --- |" + " ---: |" * len(PARTS),
    ]
    for name, test in _rows():
        lines.append(f"| {name} | " + " | ".join(str(sum(map(test, part))) for part in parts) + " |")
    lines += ["", "Unsafe passages by kind and category (a passage with two categories counts in both columns):", ""]
    lines += ["| kind \\ category | " + " | ".join(SAFETY_CATEGORIES) + " |", "| --- |" + " ---: |" * 6]
    for kind in ("mild", "explicit", "implicit", "graphic_in_context"):
        cells = Counter(c for p in passages if p.kind == kind for c in p.categories)
        lines.append(f"| {kind} | " + " | ".join(str(cells[c]) for c in SAFETY_CATEGORIES) + " |")
    books = Counter(p.source.rsplit(":", 1)[0] for p in passages if p.source != "written")
    listed = ", ".join(f"{book} {n}" for book, n in sorted(books.items(), key=lambda item: (-item[1], item[0])))
    lines += ["", f"Book passages by source: {listed}."]
    return "\n".join(lines)


def update_card(path: str | Path, passages: Sequence[Passage]) -> None:
    """Replace the counts section of the card at ``path`` (atomically)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SourceError(f"{path}: the card needs one line {BEGIN!r} and, after it, one line {END!r}")
    head, rest = text.split(BEGIN)
    tail = rest.split(END)[1]
    write_text(path, f"{head}{BEGIN}\n\n{counts(passages)}\n\n{END}{tail}")
