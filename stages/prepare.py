"""Prepare stage: sources -> cleaned, filtered, deduplicated, structured, split story records.

Loads the custom stories and the downloaded books, one record per story; drops fragments,
stories the content screen fails for their own age group (``--screen``) and duplicates (each
removal is logged with its reason in ``removed.jsonl``); holds out the books of
``split.holdout_books`` and a share of the custom stories to ``holdout.jsonl`` (in no split: the
out-of-collection measure); splits the rest by tale into train/val/test; augments train only
(every augmented copy screened); and marks every story's parts with the structure tokens.

    python -m stages.prepare --stories data/stories --books data/raw/gutenberg \\
        --screen models/safety --output-dir data/processed --metrics metrics/data.json

Every path defaults to the one dvc.yaml gives, so the spec's command works as it is:

    python -m stages.prepare --config params.yaml --output-dir data/processed
"""

from __future__ import annotations

import logging
import sys
from collections import Counter, defaultdict

from aitale import cli
from aitale.data.augment import augment
from aitale.data.books import load_books
from aitale.data.dedupe import deduplicate
from aitale.data.records import Story
from aitale.data.split import HOLDOUT, SPLITS, hold_out, split_by_tale
from aitale.data.stories import load_stories
from aitale.data.structure import structure
from aitale.data.text import word_count
from aitale.errors import ParamsError, SourceError
from aitale.io import atomic_dir, write_json, write_jsonl
from aitale.params import PrepareParams, load_section
from aitale.safety import Screen, load_screen

log = logging.getLogger("prepare")


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(PrepareParams, "prepare", args.config, cli.overrides(args))
        loaded = load_stories(args.stories) + load_books(args.books)
        content_screen = load_screen(args.screen)
    except (ParamsError, SourceError) as err:
        log.error("%s", err)
        return 2

    kept, removed = screen(loaded, params, content_screen)
    kept, duplicates = deduplicate(kept, params.dedupe)
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
    for name in (*SPLITS, HOLDOUT):
        log.info("%s: %d stories, %d words", name, len(splits[name]), sum(s.words for s in splits[name]))
    log.info("removed %d stories (%s)", len(removed), dict(Counter(r["reason"] for r in removed)))
    for method, counts in augmented.counts.items():
        log.info("augment %s: %s", method, counts)
    return 0


def screen(stories: list[Story], params: PrepareParams, content: Screen) -> tuple[list[Story], list[dict]]:
    """Keep stories of tale length that the content screen passes for their age group; explain every removal."""
    kept, removed = [], []
    for story in stories:
        words = word_count(story.text)
        if words < params.min_words:
            removed.append(_removal(story, "too_short", f"{words} words < {params.min_words}"))
        elif words > params.max_words:
            removed.append(_removal(story, "too_long", f"{words} words > {params.max_words}"))
        elif not (verdict := content.judge(story.text, story.age_group)).safe:
            removed.append(_removal(story, "unsafe", unsafe_detail(verdict), categories=verdict.categories))
        else:
            kept.append(story)
    return kept, removed


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
