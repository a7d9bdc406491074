"""One training run from files to files, shared by the broad and the specialised stages."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aitale.io import atomic_dir, write_json
from aitale.modeling.blocks import load_blocks
from aitale.modeling.checkpoint import Checkpoints
from aitale.modeling.model import model_context
from aitale.modeling.runtime import Runtime
from aitale.modeling.tracking import Tracker
from aitale.modeling.trainer import Schedule, fit
from aitale.params import Hyperparams, TrainParams

log = logging.getLogger(__name__)


def train_and_save(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    runtime: Runtime,
    *,
    hp: Hyperparams,
    train_params: TrainParams,
    train_path: str,
    val_path: str,
    output_dir: str,
    checkpoint_dir: str,
    live_dir: str,
    speed_dir: str,
    keep: Callable[[dict], bool] | None = None,
    fingerprint: dict | None = None,
) -> dict:
    """Pack the data, run :func:`~aitale.modeling.trainer.fit`, save the model with its tokenizer."""
    block_size = min(hp.block_size, model_context(model))
    if block_size < hp.block_size:
        log.info("block_size %d clamped to the model's context of %d", hp.block_size, block_size)
    train = load_blocks(train_path, tokenizer, block_size, keep)
    val = load_blocks(val_path, tokenizer, block_size, keep)
    identity = {"hp": hp.model_dump(), "train": train_params.model_dump(), "extra": fingerprint or {},
                "data": [_digest(train_path), _digest(val_path)], "init": _weights_digest(model)}
    checkpoints = Checkpoints(checkpoint_dir, hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest())
    tracker = Tracker(checkpoints.live, speed_dir, enabled=runtime.main,
                      params={"block_size": block_size, **hp.model_dump()})
    schedule = Schedule(
        eval_every=train_params.eval_every,
        patience=train_params.patience,
        checkpoint_every=train_params.checkpoint_every,
        sample_every=train_params.sample_every,
        sample_prompts=train_params.sample_prompts,
        seed=train_params.seed,
    )
    metrics = fit(model, tokenizer, train, val, hp, schedule, runtime, checkpoints, tracker)
    metrics.update(block_size=block_size, train_stories=train.stories, val_stories=val.stories)
    tracker.end()
    if runtime.main:
        with atomic_dir(output_dir) as staging:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        checkpoints.publish(live_dir)
    return metrics


def save_metrics(path: str, metrics: dict, runtime: Runtime) -> None:
    if runtime.main:
        write_json(path, metrics)


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _weights_digest(model: PreTrainedModel) -> str:
    """Identifies the starting weights (a seeded init, or the base model being fine-tuned)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()
