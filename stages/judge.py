"""Judge: every story metric for any texts, by the same functions the evaluate stage uses.

    python -m stages.judge --input texts.jsonl --output scores.jsonl

Each input line is a JSON object: ``id`` (a string or a whole number), ``text``, and optionally ``age_group``
(3-5, 6-8 or 9-12: the readers age-appropriateness judges for; default 3-5) and ``title``. Each output line
holds the line's ``id`` and one field per metric (``aitale.evaluation.metrics``: the headline metrics and
age-appropriateness), in the input's order. A bad line fails the command naming its line number, and
nothing is written. Grammar needs Link Grammar (``make system-deps``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from aitale import cli
from aitale.errors import SourceError
from aitale.evaluation.grammar import GrammarUnavailable
from aitale.evaluation.judge import TextsError, read_texts, scores
from aitale.io import write_jsonl
from aitale.safety import load_screen

DEFAULT_SCREEN = "models/safety"
log = logging.getLogger("judge")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="texts to judge (JSON lines: id, text, age_group?, title?)")
    parser.add_argument("--output", required=True, help="JSON lines: id and one field per metric, one per input line")
    parser.add_argument(
        "--screen", default=DEFAULT_SCREEN, help="the content screen's folder, for age-appropriateness (%(default)s)"
    )
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        texts = read_texts(args.input)
        screen = load_screen(args.screen)
        rows = scores(texts, screen)
    except (TextsError, SourceError, GrammarUnavailable) as err:
        log.error("%s", err)
        return 2
    write_jsonl(args.output, rows)
    log.info("judged %d texts -> %s", len(rows), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
