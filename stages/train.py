"""Train stage (the spec's finetune.py): broad fine-tuning on the whole train split.

With ``model.base: scratch`` it trains a small GPT-2 from nothing; with a hub name or a
local folder it fine-tunes that model (GPT-2, GPT-Neo, or T5 as sequence-to-sequence:
the request in, the story out). Resumes from the last checkpoint after a kill. Runs the
same under ``torchrun --nproc-per-node N -m stages.train ...`` (DDP, or FSDP with
``memory.fsdp``). The ``memory`` section of params (gradient checkpointing, LoRA, bf16 frozen
weights, FSDP) makes the larger bases fit; see the base-model table in docs/base-models.md.

Every path defaults to the one dvc.yaml gives, so the spec's command works as it is:

    python -m stages.train --config params.yaml --model gpt2-medium

``--model`` replaces ``model.base`` for this run only, and the tokenizer is then built from
that base here (``--tokenizer`` is ignored). Under DVC (``dvc repro``) the base comes from
``model.base`` in params.yaml: change it there, and the tokenizer stage reruns before train.
"""

from __future__ import annotations

import logging
import sys

import torch
from transformers import AutoTokenizer

from aitale import cli
from aitale.errors import ParamsError
from aitale.io import read_jsonl
from aitale.modeling import device as rt
from aitale.modeling.checkpoint import CheckpointError
from aitale.modeling.memory import check_runtime
from aitale.modeling.model import build_model
from aitale.modeling.session import RunFiles, train_stage
from aitale.modeling.tokenizer import build_tokenizer
from aitale.params import GenerateParams, MemoryParams, ModelParams, TrainParams, hyperparams_mismatch, load_section

log = logging.getLogger("train")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging()
    try:
        base = {"base": args.model} if args.model else None
        model_params = load_section(ModelParams, "model", args.config, base)
        params = load_section(TrainParams, "train", args.config, cli.overrides(args))
        memory = load_section(MemoryParams, "memory", args.config)
        generate = load_section(GenerateParams, "generate", args.config)  # the periodic samples' sampling
        if problem := hyperparams_mismatch(model_params, params):
            raise ParamsError(f"{args.config}: invalid params\n  {problem}")
        runtime = rt.start(params.precision, params.device)
        check_runtime(memory, runtime)
    except (ParamsError, rt.DeviceError) as err:
        log.error("%s", err)
        return 2

    torch.manual_seed(params.seed)
    if args.model:
        log.info("base %s from --model: building its tokenizer (not reading %s)", args.model, args.tokenizer)
        tokenizer = build_tokenizer(model_params, (r["structured"] for r in read_jsonl(args.train)))
    else:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    model = build_model(model_params, tokenizer)
    try:
        metrics = train_stage(
            "train",
            model,
            tokenizer,
            runtime,
            RunFiles.from_args(args),
            hp=params.hp,
            train_params=params,
            generate=generate,
            fingerprint=model_params.model_dump(),
            memory=memory,
            summary=lambda metrics: {"base": model_params.base, **metrics},
        )
    except CheckpointError as err:
        log.error("%s", err)
        return 2
    log.info(
        "val loss %.4f (perplexity %.2f) after %d steps",
        metrics["val_loss"],
        metrics["val_perplexity"],
        metrics["steps"],
    )
    rt.stop(runtime)
    return 0


def _parser():
    parser = cli.stage_parser(__doc__, TrainParams, "train")
    parser.add_argument(
        "--model",
        metavar="BASE",
        help="this run's base instead of model.base (a hub name such as gpt2-medium, or a local folder); "
        "builds its tokenizer here. Under DVC the base comes from params.yaml, and changing model.base there "
        "reruns the tokenizer stage first",
    )
    parser.add_argument("--tokenizer", default="models/tokenizer", help="the tokenizer stage's folder (%(default)s)")
    parser.add_argument("--train", default="data/processed/train.jsonl", help="train split (%(default)s)")
    parser.add_argument(
        "--val", default="data/processed/val.jsonl", help="validation split, for early stopping (%(default)s)"
    )
    parser.add_argument(
        "--output-dir", default="models/weights/storyteller", help="where the trained model is saved (%(default)s)"
    )
    parser.add_argument(
        "--checkpoints",
        default="models/checkpoints/storyteller",
        help="checkpoints of the finished run (an unfinished one resumes from CHECKPOINTS.partial) (%(default)s)",
    )
    parser.add_argument("--live", default="dvclive/train", help="DVCLive folder for curves and samples (%(default)s)")
    parser.add_argument(
        "--speed", default="metrics/speed/train", help="DVCLive folder for tokens/s and memory (%(default)s)"
    )
    parser.add_argument("--metrics", default="metrics/train.json", help="JSON file for the metrics (%(default)s)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
