"""Prepare stage: sources -> cleaned, filtered, deduplicated, structured, split story records.

Loads the custom stories and the downloaded books, one record per tale, story or chapter (each
book's kind is declared in aitale/data/books.py); drops fragments and records too long to be one
tale; cuts long records into parts (``part_words``); drops parts the content screen fails for their
own age group (``--screen``) and duplicates (each removal is logged with its reason in
``removed.jsonl``); holds out the books of
``split.holdout_books`` and a share of the custom stories to ``holdout.jsonl`` (in no split: the
out-of-collection measure); splits the rest by tale into train/val/test; augments train only
(every augmented copy screened); and marks every story's parts with the structure tokens. What each
book contributes (records, words, removals by reason and screen category, kept per split) goes to
``--books-table`` (a table DVC plots) and its sums per group to ``--groups`` (a metric).

    python -m stages.prepare --stories data/stories --books data/raw/gutenberg \\
        --screen models/safety --output-dir data/processed --metrics metrics/data.json \\
        --books-table metrics/data_books.json --groups metrics/data_groups.json

Every path defaults to the one dvc.yaml gives, so the spec's command works as it is:

    python -m stages.prepare --config params.yaml --output-dir data/processed
"""

from __future__ import annotations

import logging
import sys
from collections import Counter, defaultdict

from tqdm import tqdm

from aitale import cli
from aitale.data.augment import augment
from aitale.data.books import load_books, retold
from aitale.data.contributions import book_rows, group_sums
from aitale.data.dedupe import deduplicate
from aitale.data.parts import cut_into_parts
from aitale.data.records import Story
from aitale.data.split import HOLDOUT, SPLITS, hold_out, split_by_tale
from aitale.data.stories import load_stories
from aitale.data.structure import structure
from aitale.data.text import word_count
from aitale.data.themes import tag_themes
from aitale.errors import ParamsError, SourceError
from aitale.io import atomic_dir, write_json, write_jsonl
from aitale.params import PrepareParams, load_section
from aitale.safety import Screen, load_screen

log = logging.getLogger("prepare")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(PrepareParams, "prepare", args.config, cli.overrides(args))
        loaded = load_stories(args.stories) + load_books(args.books)
        content_screen = load_screen(args.screen)
    except (ParamsError, SourceError) as err:
        log.error("%s", err)
        return 2
    log.info("loaded %d stories, %d words", len(loaded), sum(word_count(s.text) for s in loaded))
    parts, kept, removed = screen(loaded, params, content_screen)
    kept, duplicates = deduplicate(kept, params.dedupe, retold)
    predicted = tag_themes(kept, params.themes.share, params.themes.min_stories, params.themes.most, params.seed)
    removed += [
        _removal(d.story, "duplicate", f"{d.kind} duplicate of {d.duplicate_of} ({d.similarity:.2f})")
        for d in duplicates
    ]
    holdout = hold_out(kept, params.split, params.seed)
    removed += [_removal(s, "holdout_tale", f"another telling of held-out {of}") for s, of in holdout.dropped]
    splits = split_by_tale(holdout.kept, params.split, params.seed)
    augmented = augment(
        splits["train"], params.augment.methods, params.augment.probability, params.seed, content_screen
    )
    splits["train"] += augmented.records
    splits[HOLDOUT] = holdout.held_out
    for story in (s for split in splits.values() for s in split):
        story.structured = structure(story.title, story.text, story.age_group, story.style, story.themes)
        story.words = word_count(story.text)

    with atomic_dir(args.output_dir) as staging:
        for name in (*SPLITS, HOLDOUT):
            write_jsonl(staging / f"{name}.jsonl", (s.to_json() for s in splits[name]))
        write_jsonl(staging / "removed.jsonl", removed)
    write_json(args.metrics, statistics(loaded, splits, removed, augmented.counts))
    rows = book_rows(loaded, parts, removed, splits)
    write_json(args.books_table, rows)
    write_json(args.groups, group_sums(rows))
    _report(parts, splits, removed, group_sums(rows), augmented.counts)
    if predicted:
        log.info("themes predicted for book stories: %s", dict(sorted(predicted.items())))
    return 0


def _parser():
    parser = cli.stage_parser(__doc__, PrepareParams, "prepare")
    parser.add_argument(
        "--stories", default="data/stories", help="folder of custom stories (*.md with front matter) (%(default)s)"
    )
    parser.add_argument(
        "--books", default="data/raw/gutenberg", help="the download stage's folder of Gutenberg books (%(default)s)"
    )
    parser.add_argument(
        "--screen",
        default="models/safety",
        help="the content screen's folder (the safety stage's output) (%(default)s)",
    )
    parser.add_argument(
        "--output-dir", default="data/processed", help="folder for train/val/test.jsonl and removed.jsonl (%(default)s)"
    )
    parser.add_argument(
        "--metrics", default="metrics/data.json", help="JSON file for the dataset statistics (%(default)s)"
    )
    parser.add_argument(
        "--books-table",
        default="metrics/data_books.json",
        help="JSON table, one row per book: what it contributes and what was removed (%(default)s)",
    )
    parser.add_argument(
        "--groups",
        default="metrics/data_groups.json",
        help="JSON metrics: the books table summed per group (%(default)s)",
    )
    return parser


def _report(parts: list[Story], splits: dict, removed: list[dict], groups: dict, augmentation: dict) -> None:
    """What happened, in the log: the screen's removals by category, dedupe, each group and split."""
    reasons = Counter(r["reason"] for r in removed)
    categories = dict(sorted(Counter(c for r in removed for c in r.get("categories", [])).items()))
    log.info("screen: %d of %d stories fail for their age group %s", reasons["unsafe"], len(parts), categories)
    log.info(
        "dedupe: %d duplicates dropped; %d other tellings of held-out tales",
        reasons["duplicate"],
        reasons["holdout_tale"],
    )
    for group, sums in groups.items():
        log.info(
            "group %s: %d books, %d stories, %d words -> %d words kept (screen took %d parts, dedupe %d)",
            group, sums["books"], sums["records"], sums["words"], sums["words_kept"], sums["unsafe"],
            sums["duplicate"],
        )  # fmt: skip
    for name in (*SPLITS, HOLDOUT):
        log.info("%s: %d stories, %d words", name, len(splits[name]), sum(s.words for s in splits[name]))
    log.info("removed %d stories (%s)", len(removed), dict(reasons))
    for method, counts in augmentation.items():
        log.info("augment %s: %s", method, counts)


def screen(stories: list[Story], params: PrepareParams, content: Screen) -> tuple[list[Story], list[Story], list[dict]]:
    """(parts, kept, removed): stories of tale length cut into parts of at most ``part_words``, the parts
    the content screen passes for their own age group, and a removal with its reason for every other."""
    parts, kept, removed = [], [], []
    for story in tqdm(stories, desc="screen", unit="story", mininterval=5, disable=len(stories) < 500):
        words = word_count(story.text)
        if words < params.min_words:
            removed.append(_removal(story, "too_short", f"{words} words < {params.min_words}"))
            continue
        if words > params.max_words:
            removed.append(_removal(story, "too_long", f"{words} words > {params.max_words}"))
            continue
        for part in cut_into_parts(story, params.part_words):
            parts.append(part)
            if (verdict := content.judge(part.text, part.age_group)).safe:
                kept.append(part)
            else:
                removed.append(_removal(part, "unsafe", unsafe_detail(verdict), categories=verdict.categories))
    return parts, kept, removed


def unsafe_detail(verdict) -> str:
    shown = "; ".join(
        f"{r['category']} ({r['source']}: {r['detail']}) in {r['passage']!r}" for r in verdict.reasons[:3]
    )
    more = len(verdict.reasons) - 3
    return f"fails the screen for ages {verdict.age_group}: {shown}" + (f" and {more} more" if more > 0 else "")


def _removal(story: Story, reason: str, detail: str, **more) -> dict:
    return {
        "id": story.id,
        "title": story.title,
        "collection": story.collection,
        "reason": reason,
        "detail": detail,
        **more,
    }


def statistics(
    loaded: list[Story], splits: dict[str, list[Story]], removed: list[dict], augmentation: dict | None = None
) -> dict:
    names = (*SPLITS, HOLDOUT)
    per_collection: dict[str, dict] = defaultdict(lambda: {name: {"stories": 0, "words": 0} for name in names})
    for name, stories in splits.items():
        for story in stories:
            per_collection[story.collection][name]["stories"] += 1
            per_collection[story.collection][name]["words"] += story.words
    duplicates = Counter(r["detail"].split()[0] for r in removed if r["reason"] == "duplicate")
    return {
        "loaded": dict(Counter(s.collection for s in loaded)),
        "stories": {name: len(stories) for name, stories in splits.items()},
        "words": {name: sum(s.words for s in stories) for name, stories in splits.items()},
        "augmented": sum(s.augmented for s in splits["train"]),
        # per method: train stories it was tried on, copies added, unchanged, dropped by the screen
        "augmentation": augmentation or {},
        "augmented_unsafe": sum(c["unsafe"] for c in (augmentation or {}).values()),
        "per_collection": dict(per_collection),
        "removed": dict(Counter(r["reason"] for r in removed if r["reason"] != "duplicate")),
        "unsafe_by_category": dict(sorted(Counter(c for r in removed for c in r.get("categories", [])).items())),
        "duplicates": {"exact": duplicates["exact"], "near": duplicates["near"]},
    }


if __name__ == "__main__":
    sys.exit(main())
