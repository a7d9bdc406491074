"""Specialise stage: fine-tune the broad model on one slice of the train split.

Stage 2 of the spec's multi-stage fine-tuning slices by age group or theme
(``specialise.groups``), stage 3 by narrative style (``specialise.styles``). ``dvc.yaml``
declares one stage per entry with ``foreach``, so adding an entry adds a stage and a model.
The metrics compare the slice's validation loss before (the broad model) and after.

    python -m stages.specialise --kind groups --name age-3-5 --base-model models/weights/storyteller \\
        --train data/processed/train.jsonl --val data/processed/val.jsonl \\
        --output-dir models/weights/age-3-5 --checkpoints models/checkpoints/age-3-5 \\
        --live dvclive/age-3-5 --speed metrics/speed/age-3-5 --metrics metrics/specialise/age-3-5.json
"""

from __future__ import annotations

import logging
import math
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from aitale import cli
from aitale.errors import ParamsError
from aitale.io import read_jsonl
from aitale.modeling import runtime as rt
from aitale.modeling.blocks import load_blocks
from aitale.modeling.model import model_context
from aitale.modeling.session import save_metrics, train_and_save
from aitale.modeling.trainer import evaluate_loss
from aitale.params import ModelParams, SliceFilter, SpecialiseParams, TrainParams, load_section

log = logging.getLogger("specialise")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, SpecialiseParams, "specialise")
    parser.add_argument("--kind", required=True, choices=["groups", "styles"], help="which specialise list")
    parser.add_argument("--name", required=True, help="the entry of that list to train")
    parser.add_argument("--base-model", required=True, help="the broad model's folder")
    parser.add_argument("--train", required=True, help="train split (jsonl)")
    parser.add_argument("--val", required=True, help="validation split (jsonl)")
    parser.add_argument("--output-dir", required=True, help="where the specialised model is saved")
    parser.add_argument("--checkpoints", required=True,
                        help="checkpoints of the finished run (an unfinished one resumes from CHECKPOINTS.partial)")
    parser.add_argument("--live", required=True, help="DVCLive folder")
    parser.add_argument("--speed", required=True, help="DVCLive folder for this run's tokens/s and memory")
    parser.add_argument("--metrics", required=True, help="JSON file for this model's metrics")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        model_params = load_section(ModelParams, "model", args.config)
        train_params = load_section(TrainParams, "train", args.config)
        params = load_section(SpecialiseParams, "specialise", args.config, cli.overrides(args))
        entries = getattr(params, args.kind)
        if args.name not in entries:
            raise ParamsError(f"specialise.{args.kind}.{args.name}: no such entry (have: {', '.join(entries)})")
    except ParamsError as err:
        log.error("%s", err)
        return 2

    selector = entries[args.name]
    keep = slice_filter(selector)
    for split in (args.train, args.val):
        if not any(keep(record) for record in read_jsonl(split)):
            log.error("specialise.%s.%s: no stories of %s in %s; choose a broader slice or a larger val split",
                      args.kind, args.name, selector.model_dump(exclude_none=True), split)
            return 2
    runtime = rt.start(train_params.precision)
    torch.manual_seed(train_params.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.base_model)
    model = AutoModelForCausalLM.from_pretrained(args.base_model).to(runtime.device)
    base_hp = train_params.scratch if model_params.scratch else train_params.pretrained
    hp = base_hp.model_copy(update={"learning_rate": params.learning_rate, "epochs": params.epochs})

    block_size = min(hp.block_size, model_context(model))
    broad_loss = evaluate_loss(model, load_blocks(args.val, tokenizer, block_size, keep), hp.batch_size, runtime)
    metrics = train_and_save(
        model, tokenizer, runtime, hp=hp, train_params=train_params, train_path=args.train, val_path=args.val,
        output_dir=args.output_dir, checkpoint_dir=args.checkpoints, live_dir=args.live, speed_dir=args.speed,
        keep=keep,
        fingerprint={"slice": selector.model_dump(), "name": args.name},
    )
    metrics.update(
        slice=selector.model_dump(exclude_none=True),
        broad_val_loss=round(broad_loss, 4),
        broad_val_perplexity=round(math.exp(broad_loss), 3),
        val_loss_change=round(metrics["val_loss"] - broad_loss, 4),
    )
    save_metrics(args.metrics, metrics, runtime)
    log.info("%s: slice val loss %.4f -> %.4f", args.name, broad_loss, metrics["val_loss"])
    rt.stop(runtime)
    return 0


def slice_filter(selector: SliceFilter):
    """A predicate on story records selecting the slice."""
    if selector.age_group is not None:
        return lambda record: record["age_group"] == selector.age_group
    if selector.theme is not None:
        return lambda record: selector.theme in record["themes"]
    return lambda record: record["style"] == selector.style


if __name__ == "__main__":
    sys.exit(main())
