"""Screen command: judge every line of a JSON-lines file with the content screen, for one age group.

Each input line is a JSON object with a ``text`` field; other fields are kept. Each output line is
the same object with ``safe``, ``categories``, ``scores`` and ``reasons`` added. A line that is not
UTF-8, not JSON (or nested too deeply to read), not a JSON object with a string ``text``, or whose
text holds a lone surrogate, fails the command with the line number, and nothing is written; so does
an unknown age group or an output that cannot be written. A progress bar counts the lines screened.

    python -m stages.screen --age-group 3-5 --input passages.jsonl --output verdicts.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter

from tqdm import tqdm

from aitale import cli
from aitale.data.text import unicode_text
from aitale.errors import SourceError
from aitale.io import write_jsonl
from aitale.labels import AGE_GROUPS
from aitale.safety import load_screen

DEFAULT_SCREEN = "models/safety"
CHUNK = 64  # lines judged at once between two updates of the progress bar
log = logging.getLogger("screen")


def read_texts(path: str) -> list[dict]:
    rows = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                rows.append(read_line(raw, f"{path}:{number}"))
    return rows


def read_line(raw: bytes, where: str) -> dict:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(f"{where}: not UTF-8 (byte {err.start} of the line)") from None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise SourceError(f"{where}: not JSON ({err.msg})") from None
    except RecursionError:
        raise SourceError(f"{where}: nested too deeply to read as JSON") from None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        raise SourceError(f"{where}: expected a JSON object with a string 'text' field")
    try:
        unicode_text(row["text"])
    except ValueError as err:
        raise SourceError(f"{where}: the text {err}") from None
    return row


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
    verdicts = []
    with tqdm(total=len(rows), desc="screened", unit="line") as bar:
        for start in range(0, len(rows), CHUNK):
            verdicts += screen.judge_many([row["text"] for row in rows[start : start + CHUNK]], args.age_group)
            bar.update(min(CHUNK, len(rows) - start))
    out = []
    for row, verdict in zip(rows, verdicts):
        judged = verdict.to_json()
        out.append({**row, **{k: judged[k] for k in ("safe", "categories", "scores", "reasons")}})
    try:
        write_jsonl(args.output, out)
    except OSError as err:
        log.error("%s: cannot write the output (%s)", args.output, err.strerror or err)
        return 2
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
