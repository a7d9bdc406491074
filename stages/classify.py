"""Classify stage: theme, style, age-group and emotion heads on the trained storyteller's trunk.

Each head is a Hugging Face ``AutoModelForSequenceClassification`` folder under ``--output-dir``
(``theme/``, ``style/``, ``age/``, ``emotion/``), with the TF-IDF + logistic-regression baseline
trained on the same passages beside it (``baseline.json``). Labels: the custom stories' front
matter for theme (multi-label), style and age; the hand-labelled passages of
``data/emotion/passages.jsonl`` for emotion. Train-split stories train; val and test stories
are held out. ``--metrics`` gets each head's macro-F1 on the held-out stories (per passage, and
per story for the story labels) against its baseline, and which of the two the evaluation uses. A head is a
linear probe on the frozen trunk; with ``--fine_tune_epochs N`` (``classify.fine_tune_epochs``) the trunk and
score layer are also fine-tuned, and the better of the two on the held-out stories is kept (both scores recorded).

    python -m stages.classify --model models/weights/storyteller --train data/processed/train.jsonl \\
        --heldout data/processed/val.jsonl data/processed/test.jsonl --emotions data/emotion/passages.jsonl \\
        --output-dir models/classifiers --metrics metrics/classify.json
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from aitale import cli
from aitale.errors import ParamsError
from aitale.io import read_jsonl
from aitale.params import ClassifyParams, load_section

# torch, transformers and scikit-learn are imported once the params and inputs are checked.

log = logging.getLogger("classify")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, ClassifyParams, "classify")
    parser.add_argument("--model", required=True, help="the trained storyteller (save_pretrained folder)")
    parser.add_argument("--train", required=True, help="train split (jsonl): its custom stories train the heads")
    parser.add_argument("--heldout", required=True, nargs="+", help="splits whose stories are held out (jsonl)")
    parser.add_argument("--emotions", required=True, help="hand-labelled emotion passages (jsonl)")
    parser.add_argument("--output-dir", required=True, help="folder for the heads, one sub-folder each")
    parser.add_argument("--metrics", required=True, help="JSON file for the heads' and baselines' scores")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(ClassifyParams, "classify", args.config, cli.overrides(args))
    except ParamsError as err:
        log.error("%s", err)
        return 2
    missing = [
        path
        for path in (Path(args.model) / "config.json", args.train, *args.heldout, args.emotions)
        if not Path(path).is_file()
    ]
    if missing:
        log.error("not found: %s (run the prepare and train stages first)", ", ".join(map(str, missing)))
        return 2
    return run(args, params)


def run(args, params: ClassifyParams) -> int:
    from aitale.io import atomic_dir, write_json
    from aitale.modeling.classify import datasets_for, train_heads

    splits = {"train": read_jsonl(args.train), "heldout": [r for path in args.heldout for r in read_jsonl(path)]}
    data = datasets_for(splits, read_jsonl(args.emotions), params)
    with atomic_dir(args.output_dir) as staging:
        metrics = train_heads(args.model, data, params, staging)
    write_json(args.metrics, metrics)
    for task, scores in metrics["heads"].items():
        log.info(
            "%s: macro-F1 head (%s) %.3f, baseline %.3f (held-out passages); the evaluation uses the %s",
            task,
            scores["head_kind"].replace("_", "-"),
            scores["head"]["macro_f1"],
            scores["baseline"]["macro_f1"],
            scores["chosen"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
