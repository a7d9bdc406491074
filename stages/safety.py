"""Safety stage: fit the content screen on the labelled passages and measure it on their test part.

Expands the concept lexicons through WordNet (Debian's ``wordnet-base``), takes the look-alike letter table
and the profanity model from their pinned packages, fits the screen and chooses its thresholds by
cross-validation on the train part (raised where needed so that ``safety.stories_pass`` of the project's
own stories pass for their age group), and writes its bundle (``screen.json`` and ``arrays.npz``) to
``--output-dir``, which ``prepare``, ``evaluate``, ``tell`` and the server load; to ``--metrics`` the
precision and recall, per test part, age policy and category, of the old keyword filter, the screen
before this one, the rules alone, the classifier alone and the whole screen; to ``--plots-dir`` the
precision-recall curves per age group with the operating point marked.

    python -m stages.safety --passages data/safety/passages.jsonl --rules data/safety/rules.yaml \\
        --concepts data/safety/concepts.yaml --stories data/stories --output-dir models/safety \\
        --metrics metrics/safety.json --plots-dir metrics/safety_plots
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from pathlib import Path

import yaml

from aitale import cli
from aitale.data.stories import load_stories
from aitale.errors import ParamsError, SourceError
from aitale.io import atomic_dir, write_json
from aitale.params import SafetyParams, load_section
from aitale.safety import confusables, profanity
from aitale.safety.build import build
from aitale.safety.concepts import expand
from aitale.safety.labelled import load_passages
from aitale.safety.rules import check_lexicon
from aitale.safety.wordnet import open_wordnet

log = logging.getLogger("safety")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, SafetyParams, "safety")
    parser.add_argument("--passages", required=True, help="hand-labelled passages (jsonl, with a train/test split)")
    parser.add_argument("--rules", required=True, help="the lexicon of word and phrase rules (YAML)")
    parser.add_argument("--concepts", required=True, help="concept lexicons as WordNet synsets (YAML)")
    parser.add_argument("--stories", required=True, help="the project's own stories (safety.stories_pass of them pass)")
    parser.add_argument("--output-dir", required=True, help="folder for the screen's bundle")
    parser.add_argument("--metrics", required=True, help="JSON file for precision and recall on the test part")
    parser.add_argument("--plots-dir", required=True, help="folder for the precision-recall curves (CSV)")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(SafetyParams, "safety", args.config, cli.overrides(args))
        passages = load_passages(args.passages)
        lexicon, spec = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) for path in (args.rules, args.concepts))
        if problems := check_lexicon(lexicon):
            raise SourceError(f"{args.rules}: " + "; ".join(problems))
        with open_wordnet() as wordnet:
            concepts = expand(wordnet, spec)
        stories = [(s.text, s.age_group) for s in load_stories(args.stories)]
    except (ParamsError, SourceError, OSError, yaml.YAMLError) as err:
        log.error("%s", err)
        return 2
    shipped = profanity.extract() if "profanity" in params.features else None
    screen, metrics, curves = build(passages, lexicon, concepts, confusables.table(), shipped, params, stories)
    with atomic_dir(args.output_dir) as staging:
        screen.save(staging)
    with atomic_dir(args.plots_dir) as staging:
        for age, parts in curves.items():
            for part, rows in parts.items():
                (staging / f"{age}_{part}.csv").write_text(_csv(r for r in rows), encoding="utf-8")
            points = [{**r, "part": part} for part, rows in parts.items() for r in rows if r["operating"]]
            (staging / f"{age}_operating_point.csv").write_text(_csv(points), encoding="utf-8")
    write_json(args.metrics, metrics)
    for age in metrics["untouched_test"]:
        log.info("ages %s, untouched test part: %s", age, _summary(metrics["untouched_test"][age]))
        log.info("ages %s, new test part: %s", age, _summary(metrics["new_test"][age]))
    return 0


def _csv(rows) -> str:
    rows = list(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["recall", "precision"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _summary(screens: dict) -> str:
    return "; ".join(
        f"{name} P {r['overall']['precision']:.2f} R {r['overall']['recall']:.2f}" for name, r in screens.items()
    )


if __name__ == "__main__":
    sys.exit(main())
