"""Train stage (the spec's finetune.py): broad fine-tuning on the whole train split.

With ``model.base: scratch`` it trains a small GPT-2 from nothing; with a hub name or a
local folder it fine-tunes that model. Resumes from the last checkpoint after a kill.
Runs the same under ``torchrun --nproc-per-node N -m stages.train ...`` (DDP).

    python -m stages.train --tokenizer models/tokenizer --train data/processed/train.jsonl \\
        --val data/processed/val.jsonl --output-dir models/weights/storyteller \\
        --checkpoints models/checkpoints/storyteller --live dvclive/train --speed metrics/speed/train \\
        --metrics metrics/train.json
"""

from __future__ import annotations

import logging
import sys

import torch
from transformers import AutoTokenizer

from aitale import cli
from aitale.errors import ParamsError
from aitale.modeling import runtime as rt
from aitale.modeling.model import build_model
from aitale.modeling.session import save_metrics, train_and_save
from aitale.params import ModelParams, TrainParams, load_section

log = logging.getLogger("train")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, TrainParams, "train")
    parser.add_argument("--tokenizer", required=True, help="the tokenizer stage's folder")
    parser.add_argument("--train", required=True, help="train split (jsonl)")
    parser.add_argument("--val", required=True, help="validation split (jsonl), for early stopping")
    parser.add_argument("--output-dir", required=True, help="where the trained model is saved (save_pretrained)")
    parser.add_argument("--checkpoints", required=True,
                        help="checkpoints of the finished run (an unfinished one resumes from CHECKPOINTS.partial)")
    parser.add_argument("--live", required=True, help="DVCLive folder for curves and samples")
    parser.add_argument("--speed", required=True, help="DVCLive folder for this run's tokens/s and memory")
    parser.add_argument("--metrics", required=True, help="JSON file for the final training metrics")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        model_params = load_section(ModelParams, "model", args.config)
        params = load_section(TrainParams, "train", args.config, cli.overrides(args))
    except ParamsError as err:
        log.error("%s", err)
        return 2

    runtime = rt.start(params.precision)
    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    model = build_model(model_params, tokenizer)
    hp = params.scratch if model_params.scratch else params.pretrained
    metrics = train_and_save(
        model, tokenizer, runtime, hp=hp, train_params=params, train_path=args.train, val_path=args.val,
        output_dir=args.output_dir, checkpoint_dir=args.checkpoints, live_dir=args.live, speed_dir=args.speed,
        fingerprint=model_params.model_dump(),
    )
    save_metrics(args.metrics, {"base": model_params.base, **metrics}, runtime)
    log.info("val loss %.4f (perplexity %.2f) after %d steps", metrics["val_loss"], metrics["val_perplexity"],
             metrics["steps"])
    rt.stop(runtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
