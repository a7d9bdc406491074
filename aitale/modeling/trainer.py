"""The training loop, top to bottom: batches, optimizer step, evaluation, samples, checkpoints.

Every source of randomness is either derived from the seed and the step (the data order)
or saved in the checkpoint (the RNG driving dropout), so a run killed and resumed from its
last checkpoint ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass

import psutil
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aitale.data.structure import prompt
from aitale.modeling.blocks import Blocks
from aitale.modeling.checkpoint import Checkpoints
from aitale.modeling.model import model_context
from aitale.modeling.runtime import Runtime
from aitale.modeling.tracking import Tracker
from aitale.params import Hyperparams

log = logging.getLogger(__name__)

GRAD_CLIP = 1.0
BETAS = (0.9, 0.95)
# Periodic samples are a quick look at progress, not the evaluation: short and fixed.
SAMPLE_TOKENS = 120
SAMPLE_SETTINGS = {"do_sample": True, "temperature": 0.8, "top_k": 50, "top_p": 0.9, "no_repeat_ngram_size": 3}


@dataclass
class Schedule:
    """How often things happen, in optimizer steps."""

    eval_every: int
    patience: int
    checkpoint_every: int
    sample_every: int
    sample_prompts: list[str]
    seed: int


@dataclass
class State:
    """What a resumed run needs besides weights, optimizer and RNG."""

    step: int = 0
    best_val: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    tokens_seen: int = 0
    train_loss: float = math.nan


def fit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Blocks,
    val: Blocks,
    hp: Hyperparams,
    schedule: Schedule,
    runtime: Runtime,
    checkpoints: Checkpoints,
    tracker: Tracker,
) -> dict:
    """Train ``model`` in place and leave the best (lowest val loss) weights in it."""
    model.to(runtime.device).train()
    net = DistributedDataParallel(model) if runtime.world > 1 else model
    optimizer = torch.optim.AdamW(_param_groups(model, hp.weight_decay), lr=hp.learning_rate, betas=BETAS)
    per_step = hp.batch_size * hp.grad_accum * runtime.world
    steps_per_epoch = math.ceil(len(train) / per_step)
    total = steps_per_epoch * hp.epochs if hp.max_steps == 0 else min(hp.max_steps, steps_per_epoch * hp.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_warmup_decay(hp.warmup_steps, total))

    state = State()
    if (saved := checkpoints.load_last()) is not None:
        state = State(**saved["state"])
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        if saved.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(saved["cuda_rng"], runtime.device)
        log.info("resumed from the checkpoint at step %d of %d", state.step, total)
    tracker.start(resumed=state.step > 0, step=state.step)
    log.info("training %d steps: %d blocks of %d tokens, %d per step on %d process(es), %s",
             total, len(train), train.ids.shape[1], per_step, runtime.world, runtime.dtype or "fp32")

    progress = tqdm(total=total, initial=state.step, desc="train", unit="step", disable=not runtime.main)
    stopped_early = False
    while state.step < total and not stopped_early:
        started = time.perf_counter()
        batch = _step_blocks(train, state.step, steps_per_epoch, per_step, schedule.seed)
        mine = batch[runtime.rank :: runtime.world]
        loss_sum = 0.0
        for micro, chunk in enumerate(mine.split(hp.batch_size)):
            x = chunk.to(runtime.device)
            last = micro == math.ceil(len(mine) / hp.batch_size) - 1
            with runtime.autocast(), _maybe_no_sync(net, not last):
                loss = net(input_ids=x, labels=x).loss
            (loss * len(chunk) / len(mine)).backward()
            loss_sum += loss.item() * len(chunk)
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.train_loss = _mean_across(loss_sum / len(mine), runtime)
        tokens = batch.numel()
        state.tokens_seen += tokens
        progress.update()
        progress.set_postfix(loss=f"{state.train_loss:.3f}")
        tracker.log_step(
            state.step,
            {"train/loss": state.train_loss, "train/lr": scheduler.get_last_lr()[0]},
            speed={"tokens_per_second": tokens / (time.perf_counter() - started), "memory_mb": _memory_mb(runtime)},
        )

        if state.step % schedule.eval_every == 0 or state.step == total:
            val_loss = evaluate_loss(model, val, hp.batch_size, runtime)
            tracker.log_eval(state.step, {"val/loss": val_loss})
            if val_loss < state.best_val:
                state.best_val, state.best_step, state.bad_evals = val_loss, state.step, 0
                if runtime.main:
                    checkpoints.save_best(model)
            else:
                state.bad_evals += 1
                stopped_early = schedule.patience > 0 and state.bad_evals >= schedule.patience
                if stopped_early:
                    log.info("early stop at step %d: no val improvement in %d checks", state.step, state.bad_evals)
        if runtime.main and (state.step % schedule.sample_every == 0 or state.step == total or stopped_early):
            tracker.log_samples(state.step, sample_stories(model, tokenizer, schedule.sample_prompts, runtime))
        if runtime.main and (state.step % schedule.checkpoint_every == 0 or state.step == total or stopped_early):
            checkpoints.save_last(model, optimizer, scheduler, asdict(state))
    progress.close()
    if runtime.world > 1:
        torch.distributed.barrier()  # the main process may still be writing the best weights
    best = checkpoints.load_best()
    if best is not None:
        model.load_state_dict(best)
    return {
        "steps": state.step,
        "planned_steps": total,
        "epochs": round(state.step / steps_per_epoch, 3),
        "stopped_early": stopped_early,
        "train_loss": round(state.train_loss, 4),
        "val_loss": round(state.best_val, 4),
        "val_perplexity": round(math.exp(state.best_val), 3),
        "best_step": state.best_step,
        "tokens_seen": state.tokens_seen,
        "train_tokens": train.tokens,
        "train_blocks": len(train),
        "non_padding_fraction": 1.0,  # blocks are packed end to end; see blocks.pack
        "parameters": sum(p.numel() for p in model.parameters()),
        "precision": str(runtime.dtype or "fp32").removeprefix("torch."),
    }


@torch.no_grad()
def evaluate_loss(model: PreTrainedModel, blocks: Blocks, batch_size: int, runtime: Runtime) -> float:
    """Mean next-token loss over ``blocks``, every block counted once across processes."""
    model.eval()
    total, count = 0.0, 0
    for chunk in blocks.ids[runtime.rank :: runtime.world].split(batch_size):
        x = chunk.to(runtime.device)
        with runtime.autocast():
            total += model(input_ids=x, labels=x).loss.item() * len(chunk)
        count += len(chunk)
    model.train()
    if runtime.world > 1:
        sums = torch.tensor([total, count], dtype=torch.float64)
        torch.distributed.all_reduce(sums)
        total, count = sums.tolist()
    return total / count


@torch.no_grad()
def sample_stories(model: PreTrainedModel, tokenizer, titles: list[str], runtime: Runtime) -> dict[str, str]:
    """A short story per title; run in a forked RNG so sampling never changes the training run."""
    model.eval()
    samples = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for title in titles:
            ids = tokenizer(prompt(title), return_tensors="pt").input_ids.to(runtime.device)
            room = model_context(model) - ids.shape[1]
            out = model.generate(ids, max_new_tokens=min(SAMPLE_TOKENS, room), pad_token_id=tokenizer.pad_token_id,
                                 **SAMPLE_SETTINGS)
            samples[title] = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
    model.train()
    return samples


def _step_blocks(train: Blocks, step: int, steps_per_epoch: int, per_step: int, seed: int) -> torch.Tensor:
    """The blocks of optimizer step ``step``: a slice of that epoch's seeded permutation."""
    epoch, position = divmod(step, steps_per_epoch)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return train.ids[order[position * per_step : (position + 1) * per_step]]


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only; biases and layer norms are left alone, as in GPT-2's recipe."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def _linear_warmup_decay(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _maybe_no_sync(net: torch.nn.Module, skip: bool):
    """Gradient accumulation under DDP: only the last micro-batch all-reduces."""
    return net.no_sync() if skip and isinstance(net, DistributedDataParallel) else contextlib.nullcontext()


def _mean_across(value: float, runtime: Runtime) -> float:
    if runtime.world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(tensor)
    return tensor.item() / runtime.world


def _memory_mb(runtime: Runtime) -> float:
    if runtime.device.type == "cuda":
        return torch.cuda.max_memory_allocated(runtime.device) / 2**20
    return psutil.Process().memory_info().rss / 2**20
