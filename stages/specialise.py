"""Specialise stage: fine-tune a model of the chain on its slice of the train split.

The spec's multi-stage fine-tuning: the broad model (stage 1, ``train``), then an age group or
theme (stage 2), then a narrative style (stage 3), each stage starting from the weights of the
one before it. ``specialise.chain`` declares the entries and their parents; ``dvc.yaml`` makes
each entry a stage with ``foreach``, so adding an entry adds a stage and a model. The metrics
compare the slice's validation loss before (the parent model) and after.

    python -m stages.specialise --name age-3-5 --base-model models/weights/storyteller \\
        --train data/processed/train.jsonl --val data/processed/val.jsonl \\
        --output-dir models/weights/age-3-5 --checkpoints models/checkpoints/age-3-5 \\
        --live dvclive/age-3-5 --speed metrics/speed/age-3-5 --metrics metrics/specialise/age-3-5.json
"""

from __future__ import annotations

import logging
import math
import sys

from aitale import cli
from aitale.errors import ParamsError
from aitale.io import read_jsonl
from aitale.params import GenerateParams, MemoryParams, SpecialiseParams, TrainParams, load_section

# torch and the training code are imported once the params are valid (a bad value answers at once).

log = logging.getLogger("specialise")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, SpecialiseParams, "specialise")
    parser.add_argument("--name", required=True, help="the entry of specialise.chain to train")
    parser.add_argument("--base-model", required=True, help="the parent model's folder")
    parser.add_argument("--train", required=True, help="train split (jsonl)")
    parser.add_argument("--val", required=True, help="validation split (jsonl)")
    parser.add_argument("--output-dir", required=True, help="where the specialised model is saved")
    parser.add_argument(
        "--checkpoints",
        required=True,
        help="checkpoints of the finished run (an unfinished one resumes from CHECKPOINTS.partial)",
    )
    parser.add_argument("--live", required=True, help="DVCLive folder")
    parser.add_argument("--speed", required=True, help="DVCLive folder for this run's tokens/s and memory")
    parser.add_argument("--metrics", required=True, help="JSON file for this model's metrics")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        train_params = load_section(TrainParams, "train", args.config)
        memory = load_section(MemoryParams, "memory", args.config)
        generate = load_section(GenerateParams, "generate", args.config)  # the periodic samples' sampling
        params = load_section(SpecialiseParams, "specialise", args.config, cli.overrides(args))
        if args.name not in params.chain:
            raise ParamsError(f"specialise.chain.{args.name}: no such entry (have: {', '.join(params.chain)})")
    except ParamsError as err:
        log.error("%s", err)
        return 2
    stage = params.chain[args.name]
    for split in (args.train, args.val):
        if not any(stage.selects(record) for record in read_jsonl(split)):
            log.error(
                "specialise.chain.%s: no stories of %s in %s; choose a broader slice or a larger val split",
                args.name,
                stage.slice,
                split,
            )
            return 2
    return run(args, params, train_params, memory, generate)


def run(
    args, params: SpecialiseParams, train_params: TrainParams, memory: MemoryParams, generate: GenerateParams
) -> int:
    import torch
    from transformers import AutoTokenizer

    from aitale.modeling import device as rt
    from aitale.modeling.checkpoint import CheckpointError
    from aitale.modeling.memory import check_runtime
    from aitale.modeling.model import auto_class
    from aitale.modeling.session import RunFiles, train_stage, val_loss

    stage = params.chain[args.name]
    try:
        runtime = rt.start(train_params.precision, train_params.device)
        check_runtime(memory, runtime)
    except (ParamsError, rt.DeviceError) as err:
        log.error("%s", err)
        return 2
    torch.manual_seed(train_params.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.base_model)
    model = auto_class(args.base_model).from_pretrained(args.base_model).to(runtime.device)
    hp = train_params.hp.model_copy(update={"learning_rate": params.learning_rate, "epochs": params.epochs})

    parent_loss = val_loss(model, tokenizer, args.val, hp, stage.selects, runtime)
    try:
        metrics = train_stage(
            f"specialise@{args.name}",
            model,
            tokenizer,
            runtime,
            RunFiles.from_args(args),
            hp=hp,
            train_params=train_params,
            generate=generate,
            keep=stage.selects,
            fingerprint={"stage": stage.model_dump(), "name": args.name},
            memory=memory,
            summary=lambda metrics: {
                **metrics,
                "parent": stage.parent,
                "slice": stage.slice,
                "parent_val_loss": round(parent_loss, 4),
                "parent_val_perplexity": round(math.exp(parent_loss), 3),
                "val_loss_change": round(metrics["val_loss"] - parent_loss, 4),
            },
        )
    except CheckpointError as err:
        log.error("%s", err)
        return 2
    log.info("%s (from %s): slice val loss %.4f -> %.4f", args.name, stage.parent, parent_loss, metrics["val_loss"])
    rt.stop(runtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
