"""Screen command: judge every line of a JSON-lines file with the content screen, for one age group.

Each input line is a JSON object with a ``text`` field; other fields are kept. Each output line is
the same object with ``safe``, ``categories``, ``scores`` and ``reasons`` added. A line that is not
a JSON object with a string ``text``, or an unknown age group, fails the command with the line
number, and nothing is written.

    python -m stages.screen --age-group 3-5 --input passages.jsonl --output verdicts.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter

from aitale import cli
from aitale.errors import SourceError
from aitale.io import write_jsonl
from aitale.labels import AGE_GROUPS
from aitale.safety import load_screen

DEFAULT_SCREEN = "models/safety"
log = logging.getLogger("screen")


def read_texts(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise SourceError(f"{path}:{number}: not JSON ({err.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise SourceError(f"{path}:{number}: expected a JSON object with a string 'text' field")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--age-group", required=True, help=f"the policy to judge by: {', '.join(AGE_GROUPS)}")
    parser.add_argument("--input", required=True, help="JSON lines, each with a 'text' field")
    parser.add_argument("--output", required=True, help="JSON lines: the input's, with the verdict added")
    parser.add_argument("--screen", default=DEFAULT_SCREEN, help="the screen's folder (default: %(default)s)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    if args.age_group not in AGE_GROUPS:
        log.error("unknown age group %r: one of %s", args.age_group, ", ".join(AGE_GROUPS))
        return 2
    try:
        rows = read_texts(args.input)
        screen = load_screen(args.screen)
    except (SourceError, OSError) as err:
        log.error("%s (nothing was written)", err)
        return 2
    verdicts = screen.judge_many([row["text"] for row in rows], args.age_group)
    out = []
    for row, verdict in zip(rows, verdicts):
        judged = verdict.to_json()
        out.append({**row, **{k: judged[k] for k in ("safe", "categories", "scores", "reasons")}})
    write_jsonl(args.output, out)
    unsafe = Counter(c for v in verdicts for c in v.categories)
    log.info(
        "%d of %d texts pass for ages %s; flagged: %s",
        sum(v.safe for v in verdicts),
        len(verdicts),
        args.age_group,
        dict(unsafe) or "none",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
