"""One training run from files to files, shared by the broad and the specialised stages."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aitale.io import atomic_dir, file_sha256, write_json
from aitale.modeling.blocks import load_blocks, load_pairs
from aitale.modeling.checkpoint import Checkpoints
from aitale.modeling.device import Runtime
from aitale.modeling.memory import apply_plan, merged
from aitale.modeling.model import model_context
from aitale.modeling.tracking import Tracker
from aitale.modeling.trainer import Schedule, evaluate_loss, fit, sample_settings
from aitale.modeling.wandb_run import OFF, WandbRun, start_run
from aitale.params import GenerateParams, Hyperparams, MemoryParams, TrainParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFiles:
    """What a training stage reads and writes: the splits, the model folder, the checkpoints, the DVCLive
    folders (curves and samples; tokens/s and memory) and the metrics file."""

    train: str
    val: str
    output_dir: str
    checkpoints: str
    live: str
    speed: str
    metrics: str

    @classmethod
    def from_args(cls, args) -> RunFiles:
        """From a stage's parsed arguments, which name them ``--train``, ``--val``, ``--output-dir``, ..."""
        return cls(args.train, args.val, args.output_dir, args.checkpoints, args.live, args.speed, args.metrics)


def train_stage(
    name: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    runtime: Runtime,
    files: RunFiles,
    *,
    summary: Callable[[dict], dict] = dict,
    **run,
) -> dict:
    """A training stage's run, the same for the broad and the specialised models: a W&B run named ``name``
    (when the environment switches W&B on), :func:`train_and_save` with ``run``'s keywords, and the metrics
    (``summary`` of them) written to ``files.metrics`` and W&B. Raises CheckpointError as the trainer does."""
    wandb_run = start_run(name, enabled=runtime.main)
    metrics = summary(train_and_save(model, tokenizer, runtime, files, wandb_run=wandb_run, **run))
    save_metrics(files.metrics, metrics, runtime, wandb_run)
    return metrics


def train_and_save(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    runtime: Runtime,
    files: RunFiles,
    *,
    hp: Hyperparams,
    train_params: TrainParams,
    generate: GenerateParams,
    keep: Callable[[dict], bool] | None = None,
    fingerprint: dict | None = None,
    memory: MemoryParams | None = None,
    wandb_run: WandbRun = OFF,
) -> dict:
    """Pack the data, run :func:`~aitale.modeling.trainer.fit` under the ``memory`` plan, save the model
    (LoRA adapters merged into it) with its tokenizer. ``generate``: the sampling of the periodic samples.
    ``wandb_run`` gets what DVCLive gets, and as config the rest of the params that make the run (the
    checkpoints' identity)."""
    block_size = min(hp.block_size, model_context(model))
    if block_size < hp.block_size:
        log.info("block_size %d clamped to the model's context of %d", hp.block_size, block_size)
    train, val = split_blocks(model, tokenizer, files.train, files.val, block_size, keep, train_params)
    identity = {
        "hp": hp.model_dump(),
        "train": train_params.model_dump(exclude={"scratch", "pretrained"}),
        "extra": fingerprint or {},
        "data": [file_sha256(files.train), file_sha256(files.val)],
        "init": _weights_digest(model),
        # fsdp is how the weights are laid out, not what they are: a checkpoint is the same file either way
        "memory": memory.model_dump(exclude={"fsdp"}) if memory is not None else None,
    }
    model = apply_plan(model, memory, runtime)
    checkpoints = Checkpoints(
        files.checkpoints, hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    )
    wandb_run.config({"train": identity["train"], "memory": identity["memory"], **identity["extra"]})
    tracker = Tracker(
        checkpoints.live,
        files.speed,
        runtime.main,
        params={"block_size": block_size, **hp.model_dump()},
        wandb=wandb_run,
    )
    shard = memory is not None and memory.fsdp
    metrics = fit(
        model, tokenizer, train, val, hp, _schedule(train_params, generate), runtime, checkpoints, tracker, shard=shard
    )
    metrics.update(block_size=block_size, train_stories=train.stories, val_stories=val.stories)
    # comparable across vocabularies (the sweep's yardstick); evaluate's sliding window gives the exact figure
    metrics["val_bits_per_byte"] = round(val.bits_per_byte(metrics["val_loss"]), 4)
    tracker.end()
    model = merged(model)
    if runtime.main:
        with atomic_dir(files.output_dir) as staging:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        checkpoints.publish(files.live)
    return metrics


def split_blocks(model, tokenizer, train_path, val_path, block_size, keep, train_params: TrainParams):
    """Train and val blocks: packed text for a causal LM, (request, story) pairs for a sequence-to-sequence one."""
    load = _loader(model)
    train = load(train_path, tokenizer, block_size, keep, train_params.control_dropout, train_params.seed)
    return train, load(val_path, tokenizer, block_size, keep)


def val_loss(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    val_path: str,
    hp: Hyperparams,
    keep: Callable[[dict], bool] | None,
    runtime: Runtime,
) -> float:
    """The model's loss on the ``keep`` stories of the val split, blocked as :func:`train_and_save` blocks them
    (a specialised model's parent is measured so, before training)."""
    block_size = min(hp.block_size, model_context(model))
    return evaluate_loss(model, _loader(model)(val_path, tokenizer, block_size, keep), hp.batch_size, runtime)


def _loader(model: PreTrainedModel):
    return load_pairs if model.config.is_encoder_decoder else load_blocks


def _schedule(train_params: TrainParams, generate: GenerateParams) -> Schedule:
    return Schedule(
        eval_every=train_params.eval_every,
        patience=train_params.patience,
        checkpoint_every=train_params.checkpoint_every,
        sample_every=train_params.sample_every,
        sample_prompts=train_params.sample_prompts,
        seed=train_params.seed,
        sample_settings=sample_settings(generate),
    )


def save_metrics(path: str, metrics: dict, runtime: Runtime, wandb_run: WandbRun = OFF) -> None:
    """The stage's metrics to ``path``, and to ``wandb_run`` as its summary, which ends that run."""
    if runtime.main:
        write_json(path, metrics)
    wandb_run.finish(summary=metrics)


def _weights_digest(model: PreTrainedModel) -> str:
    """Identifies the starting weights (a seeded init, or the base model being fine-tuned)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()
