"""Merge newly labelled passages into data/safety/passages.jsonl, checked, sorted by id, and the card's counts redone.

    python -m aitale.safety.merge data/safety/passages.jsonl ../safety-labels/L1.jsonl ... \\
        --card data/safety/README.md

Every new passage must pass the card's rules (:func:`aitale.safety.labelled.problems`). A passage
whose id is already there must be the same passage, word for word and label for label: merging a
file twice changes nothing, and no merge changes a label. Texts are unique across the whole set.
Nothing is written unless every file is clean; the output is the same for the same inputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from aitale.errors import SourceError
from aitale.io import write_text
from aitale.safety.card import update_card
from aitale.safety.labelled import Passage, load_passages, problems

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def merge(existing: Sequence[Passage], new: Sequence[Passage], corpus: Path) -> list[Passage]:
    """``existing`` and ``new`` together, sorted by id; a :class:`SourceError` naming every problem."""
    by_id = {p.id: p for p in existing}
    errors = []
    for passage in new:
        errors += [f"{passage.id}: {problem}" for problem in problems(passage, corpus)]
        kept = by_id.setdefault(passage.id, passage)
        if kept != passage:
            errors.append(f"{passage.id}: already in the set with other text or labels (a merge changes no label)")
    texts: dict[str, str] = {}
    for passage in sorted(by_id.values(), key=lambda p: p.id):
        if (twin := texts.setdefault(" ".join(passage.text.split()), passage.id)) != passage.id:
            errors.append(f"{passage.id}: the same text as {twin}")
    if errors:
        raise SourceError(f"{len(errors)} problem(s):\n" + "\n".join(errors))
    return sorted(by_id.values(), key=lambda p: p.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("passages", help="the labelled set to merge into (rewritten in place)")
    parser.add_argument("new", nargs="+", help="jsonl files of newly labelled passages")
    parser.add_argument("--card", help="data card whose counts section is regenerated")
    parser.add_argument("--corpus", default=str(CORPUS), help="folder with gutenberg/ and library/ (book sources)")
    args = parser.parse_args(argv)
    try:
        existing = load_passages(args.passages)
        new = [p for path in args.new for p in load_passages(path)]
        merged = merge(existing, new, Path(args.corpus))
    except (SourceError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_text(args.passages, "".join(p.line() + "\n" for p in merged))
    if args.card:
        update_card(args.card, merged)
    print(f"{args.passages}: {len(merged)} passages ({len(merged) - len(existing)} new)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
