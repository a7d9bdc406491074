"""Stories a model writes for a list of titles, as JSON lines: the quality ladder's model rungs, the human
rating sheet's sources and the README's samples.

Each title is written with the model's own generation settings (its ``generation_config.json``), seeded
``--seed + i``, asked for ``--age-group`` and nothing else (style and themes left to the model), and ended at
a sentence mark as ``tell`` ends it. ``--screen`` passes every story through the content screen as ``tell``
does (a story that fails is drawn again, then left out with a log line); without it the stories are the
model's own words, for judging the model rather than what reaches a child.

    .venv/bin/python -m benchmarks.model_samples --model models/storyteller --output /tmp/default.jsonl
    .venv/bin/python -m benchmarks.model_samples --model DIR --screen models/safety --titles "The Moon Hare"

Lines: ``{"id", "title", "text", "age_group"}`` (what ``stages.judge`` reads), ids ``NAME-i``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Titles no training split holds, for every model alike.
TITLES = (
    "The Lantern Fox", "The Girl Who Befriended the Moon", "The Brave Little Kettle", "The Snow Hare's Secret",
    "The Clockmaker's Mouse", "The Boy Who Counted Stars", "The Lost Mitten", "The Kind Giant of Hollow Hill",
    "The Owl Who Could Not Sleep", "The Three Wishing Stones", "The Fox and the Little Red Hen",
    "The Princess and the Paper Boat",
)  # fmt: skip

log = logging.getLogger("model_samples")


def raw_story(writer, title: str, age_group: str, seed: int) -> str:
    from aitale.data.structure import prompt
    from aitale.generation.batch import STOP
    from aitale.generation.story import finish

    [written] = writer.write([prompt(title, age_group)], [writer.defaults.but(seed=seed)], as_story=True)
    return finish(written.text, written.finish_reason == STOP)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model folder (save_pretrained, with its tokenizer)")
    parser.add_argument("--output", required=True, help="JSON-lines file of the stories (written whole)")
    parser.add_argument("--titles", nargs="+", default=list(TITLES), help="the titles (default: twelve of ours)")
    parser.add_argument("--age-group", default="6-8", help="the age group every story is asked for (6-8)")
    parser.add_argument("--seed", type=int, default=7, help="story i is seeded SEED + i (7)")
    parser.add_argument("--screen", help="the content screen's folder: stories as tell gives them")
    parser.add_argument("--name", help="the model's name in each line (default: the folder's name)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    sys.path.insert(0, str(REPO))
    import stages  # noqa: F401  (the math path every stage computes on)
    from aitale.generation.story import Refused, StoryRequest
    from aitale.generation.teller import Teller
    from aitale.generation.writer import Writer
    from aitale.io import write_jsonl

    name = args.name or Path(args.model).name
    teller = Teller.load(args.model, "pytorch", args.screen) if args.screen else None
    writer = teller.writer if teller else Writer.load(args.model)
    rows = []
    for i, title in enumerate(args.titles):
        seed = args.seed + i
        if teller is None:
            text = raw_story(writer, title, args.age_group, seed)
        else:
            try:
                text = teller.tell(StoryRequest(title=title, age_group=args.age_group), seed).text
            except Refused as refused:
                log.info("%s: %r refused by the screen (%s)", name, title, refused)
                continue
        # the fields stages.judge reads, no more (it rejects unknown keys): the id names the model, the log the seed
        rows.append({"id": f"{name}-{i:02d}", "title": title, "text": text, "age_group": args.age_group})
        log.info("%s: %r, seed %d, %d words", name, title, seed, len(text.split()))
    write_jsonl(args.output, rows)
    log.info("%d stories -> %s", len(rows), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
