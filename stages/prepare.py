"""Prepare stage: sources -> cleaned, filtered, deduplicated, structured, split story records.

Loads the custom stories and the downloaded books, one record per story; drops fragments,
stories that break the content rules and duplicates (each removal is logged with its
reason in ``removed.jsonl``); splits by tale into train/val/test; augments train only; and
marks every story's parts with the structure tokens.

    python -m stages.prepare --stories data/stories --books data/raw/gutenberg \\
        --output-dir data/processed --metrics metrics/data.json
"""

from __future__ import annotations

import logging
import sys
from collections import Counter, defaultdict

from aitale import cli
from aitale.data.augment import augment
from aitale.data.books import load_books
from aitale.data.content_filter import ContentFilter
from aitale.data.dedupe import deduplicate
from aitale.data.normalize import word_count
from aitale.data.records import Story
from aitale.data.split import SPLITS, split_by_tale
from aitale.data.stories import load_stories
from aitale.data.structure import structure
from aitale.errors import ParamsError, SourceError
from aitale.io import atomic_dir, write_json, write_jsonl
from aitale.params import PrepareParams, load_section

log = logging.getLogger("prepare")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, PrepareParams, "prepare")
    parser.add_argument("--stories", required=True, help="folder of custom stories (*.md with front matter)")
    parser.add_argument("--books", required=True, help="the download stage's folder of Gutenberg books")
    parser.add_argument("--output-dir", required=True, help="folder for train/val/test.jsonl and removed.jsonl")
    parser.add_argument("--metrics", required=True, help="JSON file for the dataset statistics")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(PrepareParams, "prepare", args.config, cli.overrides(args))
        loaded = load_stories(args.stories) + load_books(args.books)
    except (ParamsError, SourceError) as err:
        log.error("%s", err)
        return 2

    kept, removed = screen(loaded, params)
    kept, duplicates = deduplicate(kept, params.dedupe)
    removed += [_removal(d.story, "duplicate", f"{d.kind} duplicate of {d.duplicate_of} ({d.similarity:.2f})")
                for d in duplicates]
    splits = split_by_tale(kept, params.split, params.seed)
    splits["train"] += augment(splits["train"], params.augment.methods, params.augment.probability, params.seed)
    for story in (s for split in splits.values() for s in split):
        story.structured = structure(story.title, story.text)
        story.words = word_count(story.text)

    with atomic_dir(args.output_dir) as staging:
        for name in SPLITS:
            write_jsonl(staging / f"{name}.jsonl", (s.to_json() for s in splits[name]))
        write_jsonl(staging / "removed.jsonl", removed)
    write_json(args.metrics, statistics(loaded, splits, removed))
    for name in SPLITS:
        log.info("%s: %d stories, %d words", name, len(splits[name]), sum(s.words for s in splits[name]))
    log.info("removed %d stories (%s)", len(removed), dict(Counter(r["reason"] for r in removed)))
    return 0


def screen(stories: list[Story], params: PrepareParams) -> tuple[list[Story], list[dict]]:
    """Keep stories of tale length that pass the content rules; explain every removal."""
    rules = ContentFilter(params.filter)
    kept, removed = [], []
    for story in stories:
        words = word_count(story.text)
        if words < params.min_words:
            removed.append(_removal(story, "too_short", f"{words} words < {params.min_words}"))
        elif words > params.max_words:
            removed.append(_removal(story, "too_long", f"{words} words > {params.max_words}"))
        elif violations := rules.violations(story.text):
            removed.append(_removal(story, violations[0].rule, "; ".join(map(str, violations))))
        else:
            kept.append(story)
    return kept, removed


def _removal(story: Story, reason: str, detail: str) -> dict:
    return {"id": story.id, "title": story.title, "collection": story.collection, "reason": reason, "detail": detail}


def statistics(loaded: list[Story], splits: dict[str, list[Story]], removed: list[dict]) -> dict:
    per_collection: dict[str, dict] = defaultdict(lambda: {name: {"stories": 0, "words": 0} for name in SPLITS})
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
        "per_collection": dict(per_collection),
        "removed": dict(Counter(r["reason"] for r in removed if r["reason"] != "duplicate")),
        "duplicates": {"exact": duplicates["exact"], "near": duplicates["near"]},
    }


if __name__ == "__main__":
    sys.exit(main())
