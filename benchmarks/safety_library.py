"""What the content screen removes from the 87 library books, against the screen before it, and how long it takes.

Every record that aitale/data's splitter gives for each book of the shared library (``parse_book``, within
prepare's min/max words) is judged as prepare judges it: for its own age group (its reading grade), by the
screen before this one (``legacy.old_screen``, refitted as it was) and by this one (``models/safety``, or the
stage run on the spot with ``--build``). Reports per book and category what each removes, and the time to
screen a 400-token story (the server's path) with both on two threads.

    .venv/bin/python -m benchmarks.safety_library --screen models/safety

Results: benchmarks/results/safety_library.json and safety_library.md (the table)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from pathlib import Path

import yaml

from aitale.data.books import age_group_for
from aitale.data.gutenberg import parse_book
from aitale.data.stories import load_stories
from aitale.data.text import sentences, word_count
from aitale.errors import SourceError
from aitale.io import write_json, write_text
from aitale.labels import SAFETY_CATEGORIES
from aitale.machine import describe
from aitale.params import PrepareParams, SafetyParams, load_section
from aitale.safety import legacy, load_screen
from aitale.safety.labelled import load_passages
from aitale.safety.lemmas import tokens

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO.parent / "shared" / "corpus" / "library"
STORY_TOKENS = 400  # about 300 words: GPT-2's tokenizer gives ~1.3 tokens per word of these stories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screen", default=str(REPO / "models/safety"), help="the screen's folder")
    parser.add_argument("--library", default=str(LIBRARY), help="folder of pg<id>.txt and MANIFEST.tsv")
    parser.add_argument("--output", default=str(REPO / "benchmarks/results/safety_library.json"))
    parser.add_argument("--runs", type=int, default=50, help="timed runs of the 400-token story")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "2")
    screens = {"before": _before(), "screen": load_screen(args.screen)}
    speed = _speed(screens, args.runs)
    books = _library(screens, Path(args.library))
    result = {"machine": describe(), "story_400_tokens_ms": speed, **books}
    write_json(args.output, result)
    write_text(Path(args.output).with_suffix(".md"), _table(result))
    print(f"{books['records']} records; removed before {books['removed']['before']}, now {books['removed']['screen']}")
    print(f"a 400-token story: {speed}")


def _before():
    params = load_section(SafetyParams, "safety", REPO / "params.yaml")
    train = [p for p in load_passages(REPO / "data/safety/passages.jsonl") if p.split == "train" and p.untouched]
    return legacy.old_screen(train, yaml.safe_load((REPO / "data/safety/rules.yaml").read_text()), params)


def _speed(screens: dict, runs: int) -> dict:
    """Median and 90th-percentile milliseconds to judge a story of about 400 tokens, per screen."""
    text = max(load_stories(REPO / "data/stories"), key=lambda s: len(s.text)).text
    words = text.split()[: int(STORY_TOKENS / 1.3)]
    story = " ".join(words)
    out = {"words": len(words)}
    for name, screen in screens.items():
        times = []
        for _ in range(runs):
            # a server sees a new story each time: its sentences and passages are not cached (single words stay)
            tokens.cache_clear()
            sentences.cache_clear()
            started = time.perf_counter()
            screen.judge(story, "3-5")
            times.append(1000 * (time.perf_counter() - started))
        times.sort()
        out[name] = {"median": round(statistics.median(times), 2), "p90": round(times[int(0.9 * len(times))], 2)}
    return out


def _library(screens: dict, library: Path) -> dict:
    prepare = load_section(PrepareParams, "prepare", REPO / "params.yaml")
    manifest = [line.split("\t") for line in (library / "MANIFEST.tsv").read_text().splitlines()[1:]]
    per_book, totals, records = [], {n: Counter() for n in screens}, 0
    for book_id, _, _, title, *_ in manifest:
        try:
            parsed = parse_book((library / f"pg{book_id}.txt").read_bytes(), int(book_id))
        except SourceError as err:  # today's splitter finds no stories in some bedtime books and novels
            per_book.append({"book": int(book_id), "title": title, "records": 0, "not_split": str(err)})
            continue
        tales = [t for t in parsed if prepare.min_words <= word_count(t.text) <= prepare.max_words]
        row = {"book": int(book_id), "title": title, "records": len(tales)}
        for name, screen in screens.items():
            removed = Counter()
            for tale in tales:
                verdict = screen.judge(tale.text, age_group_for(tale.text))
                removed.update({"removed": not verdict.safe, **dict.fromkeys(verdict.categories, 1)})
            row[name] = dict(sorted(removed.items()))
            totals[name].update(removed)
        records += len(tales)
        per_book.append(row)
        print(book_id, row.get("before", {}).get("removed", 0), row["screen"].get("removed", 0), len(tales), flush=True)
    return {
        "books": len(per_book),
        "records": records,
        "removed": {n: totals[n]["removed"] for n in screens},
        "removed_by_category": {n: {c: totals[n][c] for c in SAFETY_CATEGORIES} for n in screens},
        "per_book": per_book,
    }


def _table(result: dict) -> str:
    head = "| book | records | removed before | removed now | " + " | ".join(SAFETY_CATEGORIES) + " |"
    lines = [
        "# What the content screen removes from the library (before -> now; records judged for their own age group)",
        "",
        f"Machine: {result['machine']['cpu_model']}. A 400-token story: {result['story_400_tokens_ms']}.",
        "",
        head,
        "| --- |" + " ---: |" * (3 + len(SAFETY_CATEGORIES)),
    ]
    for row in [*result["per_book"], {"book": "all", "title": "", "records": result["records"], **_all(result)}]:
        if "not_split" in row:
            lines.append(f"| {row['book']} {row['title']} | 0 (not split by aitale/data today) |" + " |" * 8)
            continue
        cells = [f"{row['before'].get(c, 0)} -> {row['screen'].get(c, 0)}" for c in SAFETY_CATEGORIES]
        removed = f"{row['before'].get('removed', 0)} | {row['screen'].get('removed', 0)}"
        lines.append(f"| {row['book']} {row['title']} | {row['records']} | {removed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _all(result: dict) -> dict:
    return {n: {"removed": result["removed"][n], **result["removed_by_category"][n]} for n in result["removed"]}


if __name__ == "__main__":
    main()
