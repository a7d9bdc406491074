"""Human evaluation stage: a blind rating sheet of stories from several sources, and its score.

``sheet`` has the model and the baseline write one story per ``human_eval.prompts`` title with the
evaluated model's generation settings (its ``generation_config.json``; seeded with ``human_eval.seed``);
``--texts NAME=PATH`` adds the stories of another source as they are (real stories, samples of other
models: JSON lines of id, text and title, as ``stages.judge`` reads them). All are shuffled under opaque
ids into sheet.csv, sheet.html (an offline form), README.md for the raters and key.json (the source of
each sample; keep it from the raters). ``score`` validates the completed rating CSVs against the key and
the scale and writes mean, std and n per source and criterion, the raters' agreement (Krippendorff's
alpha) and each story metric's Spearman correlation with the stories' mean rating.

    python -m stages.human_eval sheet --model models/storyteller --output-dir human_eval/sheet \\
        --texts real=real.jsonl --texts early=early-checkpoint.jsonl
    python -m stages.human_eval score --ratings ratings-*.csv --key human_eval/sheet/key.json \\
        --output metrics/human_eval.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from aitale import cli
from aitale.errors import ParamsError
from aitale.evaluation import human
from aitale.generation.config import default_settings
from aitale.io import atomic_dir, write_json, write_text
from aitale.params import HumanEvalParams, load_section

log = logging.getLogger("human_eval")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(HumanEvalParams, "human_eval", args.config, cli.overrides(args))
    except ParamsError as err:
        log.error("%s", err)
        return 2
    return sheet(args, params) if args.command == "sheet" else score(args, params)


def parser() -> argparse.ArgumentParser:
    common = cli.stage_parser(None, HumanEvalParams, "human_eval")
    main_parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="{sheet,score}")
    # parents= gives each command --config, --help and the overrides (--baseline, --seed, ...)
    sheet_parser = commands.add_parser(
        "sheet",
        parents=[common],
        add_help=False,
        help="generate the stories and write the blind rating sheet",
        description="Generate the stories and write the blind rating sheet.",
    )
    sheet_parser.add_argument("--model", required=True, help="the model under evaluation (save_pretrained folder)")
    sheet_parser.add_argument(
        "--output-dir", required=True, help=f"folder for {', '.join(human.SHEET_FILES)} (replaced as a whole)"
    )
    sheet_parser.add_argument(
        "--texts",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another source's stories as they are (JSON lines: id, text, title); repeatable",
    )
    score_parser = commands.add_parser(
        "score",
        parents=[common],
        add_help=False,
        help="validate completed ratings and write the per-model scores",
        description="Validate completed ratings and write the per-model scores.",
    )
    score_parser.add_argument(
        "--ratings",
        required=True,
        nargs="+",
        metavar="FILE",
        help="completed rating CSVs (sheet.csv's columns), one or many raters each",
    )
    score_parser.add_argument("--key", required=True, help="the key.json written with the sheet")
    score_parser.add_argument("--sheet", help="the sheet.csv written with the key (default: beside the key)")
    score_parser.add_argument("--output", required=True, help="JSON file for the scores")
    return main_parser


def sheet(args: argparse.Namespace, params: HumanEvalParams) -> int:
    models = {human.MODEL: args.model, human.BASELINE: params.baseline}  # --baseline overrides the param
    for name, folder in models.items():
        if not (Path(folder) / "config.json").is_file():
            log.error("%s %s: not a model folder (no config.json); train and package it first", name, folder)
            return 2
    if Path(models[human.MODEL]).resolve() == Path(models[human.BASELINE]).resolve():
        log.warning("the model and the baseline are the same folder (%s): the comparison is void", args.model)
    output = Path(args.output_dir)
    others = sorted(p.name for p in output.iterdir() if p.name not in human.SHEET_FILES) if output.is_dir() else []
    if others:
        log.error(
            "%s holds files the sheet did not write (%s): completed ratings? Move them away or pick "
            "another --output-dir; the folder is replaced as a whole",
            output,
            ", ".join(others),
        )
        return 2

    try:  # read before any story is written: a bad file fails in seconds
        texts = [human.text_source(*text_spec(spec)) for spec in args.texts]
        names = [*models, *(source.label for source in texts)]
        if len(set(names)) < len(names):
            raise ValueError(f"--texts: every source needs its own name, not one of {', '.join(names)} again")
    except (human.RatingsError, ValueError) as err:
        log.error("%s", err)
        return 2
    settings = default_settings(args.model)  # what the evaluated model ships with, for both models
    sources = []
    for name, folder in models.items():
        try:
            written = human.write_stories(folder, params.prompts, settings, params.seed)
        except (OSError, ValueError) as err:  # an unloadable folder, or a prompt longer than the context
            log.error("%s %s: %s", name, folder, err)
            return 2
        sources.append(human.Source(name, folder, list(params.prompts), written))
        log.info("%s (%s): %d stories", name, folder, len(params.prompts))
    sources += texts
    try:
        samples = human.shuffle_samples(sources, params.seed)
    except human.RatingsError as err:
        log.error("%s", err)
        return 2
    with atomic_dir(output) as staging:
        write_text(staging / "sheet.csv", human.sheet_csv(samples))
        write_text(staging / "sheet.html", human.sheet_html(samples, params.scale_min, params.scale_max))
        write_text(staging / "README.md", human.readme(samples, params.scale_min, params.scale_max))
        write_json(staging / "key.json", human.key_json(samples))
    log.info(
        "wrote %d blind samples of %d sources to %s; keep key.json from the raters", len(samples), len(sources), output
    )
    return 0


def text_spec(spec: str) -> tuple[str, str]:
    """``NAME=PATH`` of ``--texts``."""
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path:
        raise ValueError(f"--texts {spec!r}: expected NAME=PATH")
    return name.strip(), path


def score(args: argparse.Namespace, params: HumanEvalParams) -> int:
    try:
        key = human.read_key(args.key)
        ratings = human.read_ratings(args.ratings, key, params.scale_min, params.scale_max)
        stories = human.sheet_stories(args.sheet or Path(args.key).with_name("sheet.csv"))
    except human.RatingsError as err:
        log.error("%s", err)
        return 2
    if missing := sorted({r.sample_id for r in ratings} - set(stories)):
        log.error("the sheet beside the key lacks rated samples %s: not the key's sheet?", ", ".join(missing))
        return 2
    summary = human.summarise(ratings, key, params.scale_min, params.scale_max)
    summary["agreement"] = human.agreement(ratings, params.scale_min, params.scale_max)
    summary["metric_correlation"] = human.metric_correlation(ratings, stories)
    write_json(args.output, summary)
    log.info(
        "%d ratings from %d raters: overall %s",
        summary["ratings"],
        summary["raters"],
        json.dumps({name: m["overall"]["mean"] for name, m in summary["models"].items()}, sort_keys=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
