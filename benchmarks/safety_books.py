"""What the content screen removes from the ten reference books, against the old keyword filter.

Every tale of tale length (prepare's min/max words) in the ten books of the shared corpus is
judged as prepare judges it: by the old filter (one policy, rates over the whole story) and by
the screen for the tale's own age group (its reading grade). Reports the removals of each, by
category, the tales that changed side with their reasons, and the seconds each took.

    .venv/bin/python -m benchmarks.safety_books                # the screen in models/safety
    .venv/bin/python -m benchmarks.safety_books --screen DIR

Results: benchmarks/results/safety_books.json
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from aitale.data.gutenberg import parse_book
from aitale.data.readability import age_group_for
from aitale.data.text import word_count
from aitale.io import write_json
from aitale.params import PrepareParams, load_section
from aitale.safety import legacy, load_screen
from aitale.safety.measure import LEGACY_CATEGORY

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "gutenberg"
EXAMPLES = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screen", default=str(REPO / "models/safety"), help="the screen's folder")
    parser.add_argument("--corpus", default=str(CORPUS), help="folder of pg<id>.txt and MANIFEST.tsv")
    parser.add_argument("--output", default=str(REPO / "benchmarks/results/safety_books.json"))
    args = parser.parse_args()
    screen = load_screen(args.screen)
    prepare = load_section(PrepareParams, "prepare", REPO / "params.yaml")
    corpus = Path(args.corpus)
    books = [int(line.split("\t")[0]) for line in (corpus / "MANIFEST.tsv").read_text().splitlines()[1:]]
    tales = [
        (book, tale)
        for book in books
        for tale in parse_book((corpus / f"pg{book}.txt").read_bytes(), book)
        if prepare.min_words <= word_count(tale.text) <= prepare.max_words
    ]
    rows, seconds = [], {"keyword_filter": 0.0, "screen": 0.0}
    for book, tale in tqdm(tales, desc="judging tales"):
        age = age_group_for(tale.text)
        started = time.perf_counter()
        old = legacy.violations(tale.text)
        seconds["keyword_filter"] += time.perf_counter() - started
        started = time.perf_counter()
        verdict = screen.judge(tale.text, age)
        seconds["screen"] += time.perf_counter() - started
        rows.append({"book": book, "title": tale.title, "age_group": age, "old": old, "new": verdict})

    def example(row: dict) -> dict:
        return {
            "book": row["book"],
            "title": row["title"],
            "age_group": row["age_group"],
            "old_filter": row["old"],
            "screen": [
                f"{r['category']} ({r['source']}: {r['detail']}): {r['passage']}" for r in row["new"].reasons[:3]
            ],
        }

    old_only = [r for r in rows if r["old"] and r["new"].safe]
    new_only = [r for r in rows if not r["old"] and not r["new"].safe]
    result = {
        "tales": len(rows),
        "by_age_group": dict(sorted(Counter(r["age_group"] for r in rows).items())),
        "removed": {
            "keyword_filter": sum(bool(r["old"]) for r in rows),
            "screen": sum(not r["new"].safe for r in rows),
        },
        "removed_by_category": {
            "keyword_filter": dict(
                sorted(Counter(LEGACY_CATEGORY[v.split(":")[0]] for r in rows for v in r["old"]).items())
            ),
            "screen": dict(sorted(Counter(c for r in rows for c in r["new"].categories).items())),
        },
        "false_friend_removals": {
            "keyword_filter": sum(bool(r["old"]) and all(_false_friend(v) for v in r["old"]) for r in rows),
            "screen": sum(
                not r["new"].safe and all(_false_friend(x["detail"]) for x in r["new"].reasons) for r in rows
            ),
        },
        "changed_side": {
            "removed_by_the_old_filter_only": len(old_only),
            "removed_by_the_screen_only": len(new_only),
            "examples_kept_now": [example(r) for r in old_only[:EXAMPLES]],
            "examples_removed_now": [example(r) for r in new_only[:EXAMPLES]],
        },
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "ratio_screen_to_filter_time": round(seconds["screen"] / max(seconds["keyword_filter"], 1e-9), 1),
    }
    write_json(args.output, result)
    print(
        f"{len(rows)} tales: the old filter removes {result['removed']['keyword_filter']} "
        f"({result['false_friend_removals']['keyword_filter']} for a false friend alone), the screen "
        f"{result['removed']['screen']} ({result['false_friend_removals']['screen']}); "
        f"{len(old_only)} kept now, {len(new_only)} removed now -> {args.output}"
    )


def _false_friend(reason: str) -> bool:
    """A reason that rests only on "stable(s)" or "Lustig"."""
    matched = reason.rsplit("(", 1)[-1].rstrip(")").split(", ") if "(" in reason else [reason]
    return all(m.lower().startswith(("stabl", "lustig", "'stabl", "'lustig")) for m in matched)


if __name__ == "__main__":
    main()
