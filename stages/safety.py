"""Safety stage: fit the content screen on the labelled passages and measure it on their test part.

Writes the screen's bundle (``screen.json``: the lexicon, the classifier and the per-age
thresholds) to ``--output-dir``, which ``prepare``, ``evaluate``, ``tell`` and the server load,
and to ``--metrics`` the precision and recall, per age policy and category, of the old keyword
filter, the rules alone, the classifier alone and the combined screen.

    python -m stages.safety --passages data/safety/passages.jsonl --rules data/safety/rules.yaml \\
        --output-dir models/safety --metrics metrics/safety.json
"""

from __future__ import annotations

import logging
import sys

import yaml

from aitale import cli
from aitale.errors import ParamsError, SourceError
from aitale.io import atomic_dir, write_json
from aitale.params import SafetyParams, load_section
from aitale.safety.build import build
from aitale.safety.labelled import load_passages
from aitale.safety.rules import check_lexicon
from aitale.safety.screen import BUNDLE

log = logging.getLogger("safety")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, SafetyParams, "safety")
    parser.add_argument("--passages", required=True, help="hand-labelled passages (jsonl, with a train/test split)")
    parser.add_argument("--rules", required=True, help="the lexicon of word and phrase rules (YAML)")
    parser.add_argument("--output-dir", required=True, help="folder for the screen's bundle")
    parser.add_argument("--metrics", required=True, help="JSON file for precision and recall on the test part")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(SafetyParams, "safety", args.config, cli.overrides(args))
        passages = load_passages(args.passages)
        with open(args.rules, encoding="utf-8") as handle:
            lexicon = yaml.safe_load(handle)
        if problems := check_lexicon(lexicon):
            raise SourceError(f"{args.rules}: " + "; ".join(problems))
    except (ParamsError, SourceError, OSError, yaml.YAMLError) as err:
        log.error("%s", err)
        return 2
    screen, metrics = build(passages, lexicon, params)
    with atomic_dir(args.output_dir) as staging:
        write_json(staging / BUNDLE, screen.to_json())
    write_json(args.metrics, metrics)
    for age, screens in metrics["test"].items():
        log.info(
            "ages %s, test part: %s",
            age,
            "; ".join(
                f"{name} P {r['overall']['precision']:.2f} R {r['overall']['recall']:.2f}"
                for name, r in screens.items()
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
