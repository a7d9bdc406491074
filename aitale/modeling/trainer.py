"""The training loop, top to bottom: batches, optimizer step, evaluation, samples, checkpoints.

Every source of randomness is either derived from the seed and the step (the data order)
or saved in the checkpoint (the RNG driving dropout), so a run killed and resumed from its
last checkpoint ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

import psutil
import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aitale.data.structure import prompt
from aitale.generation.sampling import GenerationSettings
from aitale.machine import math_settings
from aitale.modeling.blocks import IGNORE, Blocks
from aitale.modeling.checkpoint import Checkpoints
from aitale.modeling.device import Runtime
from aitale.modeling.memory import Distributed
from aitale.modeling.model import model_context
from aitale.modeling.tracking import Tracker
from aitale.params import GenerateParams, Hyperparams

log = logging.getLogger(__name__)

GRAD_CLIP = 1.0
BETAS = (0.9, 0.95)
SAMPLE_TOKENS = 120  # periodic samples are a quick look at progress, not the evaluation: short


@dataclass
class Schedule:
    """How often things happen, in optimizer steps."""

    eval_every: int
    patience: int
    checkpoint_every: int
    sample_every: int
    sample_prompts: list[str]
    seed: int
    sample_settings: GenerationSettings  # of the periodic samples (:func:`sample_settings`)


def sample_settings(generate: GenerateParams) -> GenerationSettings:
    """The periodic samples' settings: the ``generate`` params' sampling, :data:`SAMPLE_TOKENS` long
    (their lengths and seed are the stories'; a sample runs in a forked RNG seeded with 0)."""
    return GenerationSettings.from_params(generate, seed=0, min_new_tokens=0, max_new_tokens=SAMPLE_TOKENS)


@dataclass
class State:
    """What a resumed run needs besides weights, optimizer and RNG."""

    step: int = 0
    best_val: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    tokens_seen: int = 0
    train_loss: float = math.nan
    seconds: float = 0.0  # wall time in the loop so far (evaluations and checkpoints included)


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
    shard: bool = False,
) -> dict:
    """Train ``model`` and leave the best (lowest val loss) weights in it: under torchrun DDP, or FSDP
    with ``shard`` (see :class:`~aitale.modeling.memory.Distributed`)."""
    state = State()
    if (saved := checkpoints.load_last()) is not None:
        state = State(**saved["state"])
        model.load_state_dict(saved["model"])  # before it is copied or sharded: every process starts from it
    parallel = Distributed(model.train(), runtime, shard)
    per_step = hp.batch_size * hp.grad_accum * runtime.world
    steps_per_epoch, total = planned_steps(len(train), per_step, hp.epochs, hp.max_steps)
    optimizer, scheduler = make_optimizer(
        parallel.net, hp.learning_rate, hp.weight_decay, hp.warmup_steps, total, hp.schedule
    )
    if saved is not None:
        _restore(saved, parallel, optimizer, scheduler, runtime)
        log.info("resumed from the checkpoint at step %d of %d", state.step, total)
    tracker.start(resumed=state.step > 0, step=state.step)
    log.info(
        "training %d steps: %d blocks of %d tokens, %d per step on %d process(es), %s",
        total,
        len(train),
        train.ids.shape[1],
        per_step,
        runtime.world,
        runtime.dtype or "fp32",
    )
    stopped_early = _Loop(
        tokenizer=tokenizer, train=train, val=val, hp=hp, schedule=schedule, runtime=runtime,
        checkpoints=checkpoints, tracker=tracker, parallel=parallel, optimizer=optimizer, scheduler=scheduler,
        state=state, steps_per_epoch=steps_per_epoch, total=total, per_step=per_step,
    ).run()  # fmt: skip
    _keep_best(model, checkpoints, parallel, runtime)
    return _summary(model, train, runtime, state, steps_per_epoch, total, stopped_early)


def _restore(saved: dict, parallel: Distributed, optimizer, scheduler, runtime: Runtime) -> None:
    """The optimizer, schedule and RNG of a checkpoint (the weights are loaded before they are distributed)."""
    parallel.load_optimizer(optimizer, saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if saved.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(saved["cuda_rng"], runtime.device)


@dataclass
class _Loop:
    """One run of :func:`fit` from its current step to its last: each method is one part of a step."""

    tokenizer: PreTrainedTokenizerBase
    train: Blocks
    val: Blocks
    hp: Hyperparams
    schedule: Schedule
    runtime: Runtime
    checkpoints: Checkpoints
    tracker: Tracker
    parallel: Distributed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    state: State
    steps_per_epoch: int
    total: int
    per_step: int

    def run(self) -> bool:
        """Every step left; whether the run stopped early (``patience`` evaluations without a better val loss)."""
        state, total = self.state, self.total
        progress = tqdm(total=total, initial=state.step, desc="train", unit="step", disable=not self.runtime.main)
        stopped_early = False
        while state.step < total and not stopped_early:
            started = time.perf_counter()
            tokens = self.step()
            progress.update()
            progress.set_postfix(loss=f"{state.train_loss:.3f}")
            self.log_step(tokens, started)
            if state.step % self.schedule.eval_every == 0 or state.step == total:
                stopped_early = self.evaluate()
            last = state.step == total or stopped_early
            sampling = self.runtime.main or self.parallel.sharded  # a sharded forward needs every process
            if sampling and (state.step % self.schedule.sample_every == 0 or last):
                self.sample()
            if state.step % self.schedule.checkpoint_every == 0 or last:
                self.checkpoint()
            state.seconds += time.perf_counter() - started
        progress.close()
        return stopped_early

    def step(self) -> int:
        """One optimizer step over this step's blocks (in micro-batches); the tokens it trained on."""
        runtime, parallel, state = self.runtime, self.parallel, self.state
        rows = step_rows(len(self.train), state.step, self.steps_per_epoch, self.per_step, self.schedule.seed)
        chunks = rank_chunks(rows, self.hp.batch_size, runtime)
        loss_sum = 0.0
        for micro, chunk in enumerate(chunks):
            with runtime.autocast(), parallel.accumulating(last=micro == len(chunks) - 1):
                loss = batch_loss(parallel.net, self.train, chunk if len(chunk) else rows[:1], runtime.device)
            # each row 1/len(rows) of the step's loss; the processes' gradients are averaged, hence x world
            (loss * len(chunk) * runtime.world / len(rows)).backward()
            loss_sum += loss.item() * len(chunk)
        optimizer_step(parallel.net, self.optimizer, self.scheduler)
        state.step += 1
        state.train_loss = _sum_across(loss_sum, runtime) / len(rows)
        tokens = _tokens(self.train, rows)
        state.tokens_seen += tokens
        return tokens

    def log_step(self, tokens: int, started: float) -> None:
        state = self.state
        self.tracker.log_step(
            state.step,
            {"train/loss": state.train_loss, "train/lr": self.scheduler.get_last_lr()[0]},
            speed={
                "tokens_per_second": tokens / (time.perf_counter() - started),
                "memory_mb": memory_mb(self.runtime),
                "elapsed_seconds": state.seconds + time.perf_counter() - started,  # the x of loss-against-time
            },
        )

    def evaluate(self) -> bool:
        """The val loss, the best weights kept; whether the run stops early."""
        state, parallel = self.state, self.parallel
        val_loss = evaluate_loss(parallel.module, self.val, self.hp.batch_size, self.runtime)
        self.tracker.log_eval(state.step, {"val/loss": val_loss})
        if val_loss < state.best_val:
            state.best_val, state.best_step, state.bad_evals = val_loss, state.step, 0
            weights = parallel.weights()  # under FSDP every process takes part in the gathering
            if self.runtime.main:
                self.checkpoints.save_best(weights)
            return False
        state.bad_evals += 1
        stopped_early = self.schedule.patience > 0 and state.bad_evals >= self.schedule.patience
        if stopped_early:
            log.info("early stop at step %d: no val improvement in %d checks", state.step, state.bad_evals)
        return stopped_early

    def sample(self) -> None:
        parallel, schedule = self.parallel, self.schedule
        samples = sample_stories(
            parallel.module, self.tokenizer, schedule.sample_prompts, schedule.sample_settings, self.runtime,
            parallel.sharded,
        )  # fmt: skip
        self.tracker.log_samples(self.state.step, samples)

    def checkpoint(self) -> None:
        weights, moments = self.parallel.weights(), self.parallel.optimizer_state(self.optimizer)
        if self.runtime.main:
            self.checkpoints.save_last(weights, moments, self.scheduler, asdict(self.state))


def _keep_best(model: PreTrainedModel, checkpoints: Checkpoints, parallel: Distributed, runtime: Runtime) -> None:
    """Load the best weights into ``model`` (under FSDP, the whole model the shards were copied from)."""
    if runtime.world > 1:
        torch.distributed.barrier()  # the main process may still be writing the best weights
    best = checkpoints.load_best()
    if best is None and parallel.sharded:  # no val loss below inf (NaN): the last weights, as DDP would keep
        best = checkpoints.load_last()["model"]
    if best is not None:
        model.load_state_dict(best)


def _summary(
    model: PreTrainedModel, train: Blocks, runtime: Runtime, state: State, steps_per_epoch: int, total: int,
    stopped_early: bool,
) -> dict:  # fmt: skip
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
        "non_padding_fraction": train.non_padding_fraction,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "precision": str(runtime.dtype or "fp32").removeprefix("torch."),
        **math_settings(),  # pinned on every CPU unless AITALE_NATIVE_MATH: a diff across machines explains itself
    }


@torch.no_grad()
def evaluate_loss(model: PreTrainedModel, blocks: Blocks, batch_size: int, runtime: Runtime) -> float:
    """Mean next-token loss over ``blocks``, every block counted once across processes."""
    model.eval()
    total, count = 0.0, 0
    for chunk in rank_chunks(torch.arange(len(blocks)), batch_size, runtime):
        with runtime.autocast():
            loss = batch_loss(model, blocks, chunk if len(chunk) else torch.zeros(1, dtype=torch.long), runtime.device)
        total += loss.item() * len(chunk)
        count += len(chunk)
    model.train()
    if runtime.world > 1:
        sums = torch.tensor([total, count], dtype=torch.float64)
        torch.distributed.all_reduce(sums)
        total, count = sums.tolist()
    return total / count


@torch.no_grad()
def sample_stories(
    model: PreTrainedModel,
    tokenizer,
    titles: list[str],
    settings: GenerationSettings,
    runtime: Runtime,
    synced: bool = False,
) -> dict[str, str]:
    """A short story per title; run in a forked RNG so sampling never changes the training run.

    ``synced``: every process runs it (a sharded model), each stepping until the last has finished."""
    model.eval()
    samples = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for title in titles:
            ids = tokenizer(prompt(title), return_tensors="pt", add_special_tokens=False).input_ids.to(runtime.device)
            room = model_context(model) - ids.shape[1]
            out = model.generate(  # by keyword: a peft model's generate takes no positional ids
                input_ids=ids,
                pad_token_id=tokenizer.pad_token_id,
                synced_gpus=synced,
                **settings.within(room).transformers_options(),
            )
            new = out[0] if model.config.is_encoder_decoder else out[0, ids.shape[1] :]
            samples[title] = tokenizer.decode(new, skip_special_tokens=True).strip()
    model.train()
    return samples


def planned_steps(blocks: int, per_step: int, epochs: int, max_steps: int = 0) -> tuple[int, int]:
    """(steps per epoch, optimizer steps in all): ``epochs`` passes, or ``max_steps`` if that is fewer."""
    steps_per_epoch = math.ceil(blocks / per_step)
    total = steps_per_epoch * epochs
    return steps_per_epoch, total if max_steps == 0 else min(max_steps, total)


def step_rows(n: int, step: int, steps_per_epoch: int, per_step: int, seed: int) -> torch.Tensor:
    """The block indices of optimizer step ``step``: a slice of that epoch's seeded permutation of ``n``."""
    epoch, position = divmod(step, steps_per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[position * per_step : (position + 1) * per_step]


def step_blocks(train: Blocks, step: int, steps_per_epoch: int, per_step: int, seed: int) -> torch.Tensor:
    """The blocks of optimizer step ``step``: a slice of that epoch's seeded permutation."""
    return train.ids[step_rows(len(train), step, steps_per_epoch, per_step, seed)]


def batch_loss(net: torch.nn.Module, blocks: Blocks, rows: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Mean next-token loss of the blocks ``rows``: causal (each block its own labels), or a sequence-to-sequence
    model's on the stories given their requests."""
    x = blocks.ids[rows]
    if blocks.targets is None:
        x = x.to(device)
        return net(input_ids=x, labels=x).loss
    used = int((x != blocks.pad_token_id).sum(1).max())  # trim the padding every row of this batch has
    y = blocks.targets[rows]
    y = y[:, : int((y != IGNORE).sum(1).max())]
    x = x[:, : max(1, used)]
    return net(input_ids=x.to(device), attention_mask=(x != blocks.pad_token_id).long().to(device),
               labels=y.to(device)).loss  # fmt: skip


def rank_chunks(rows: torch.Tensor, batch_size: int, runtime: Runtime) -> list[torch.Tensor]:
    """This process's share of ``rows`` in batches, as many batches in every process: a process with fewer
    rows gets empty ones to run as a dummy (a sharded forward and a DDP backward wait for every process)."""
    mine = rows[runtime.rank :: runtime.world]
    count = math.ceil(math.ceil(len(rows) / runtime.world) / batch_size)
    return [mine[i * batch_size : (i + 1) * batch_size] for i in range(count)]


def _tokens(blocks: Blocks, rows: torch.Tensor) -> int:
    if blocks.targets is None:
        return blocks.ids[rows].numel()
    return int((blocks.targets[rows] != IGNORE).sum())


def make_optimizer(
    model: torch.nn.Module,
    learning_rate: float,
    weight_decay: float,
    warmup: int,
    total: int,
    schedule: str = "linear",
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with GPT-2's betas, decaying matrices only (not biases and norms), linear warmup, then
    the ``schedule``'s decay to 0 (``linear`` or ``cosine``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, betas=BETAS)
    factor = cosine_warmup_decay(warmup, total) if schedule == "cosine" else linear_warmup_decay(warmup, total)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def linear_warmup_decay(warmup: int, total: int):
    """The learning-rate factor of each step: up to 1 over ``warmup`` steps, then down to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def cosine_warmup_decay(warmup: int, total: int):
    """Up to 1 over ``warmup`` steps, then down to 0 at ``total`` along a half cosine (it stays near the
    peak longer than the linear decay, and lingers longer at small rates at the end)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * done))

    return factor


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler) -> None:
    """Clip the accumulated gradients, step the optimizer and the schedule, clear the gradients."""
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _sum_across(value: float, runtime: Runtime) -> float:
    if runtime.world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(tensor)
    return tensor.item()


def memory_mb(runtime: Runtime) -> float:
    """Peak GPU memory allocated, or the resident memory of the process on CPU, in MiB."""
    if runtime.device.type == "cuda":
        return torch.cuda.max_memory_allocated(runtime.device) / 2**20
    return psutil.Process().memory_info().rss / 2**20
