"""Training speed: the train stage's loop against a plain fp32 PyTorch loop, on this machine.

Both train the scratch model of ``params.yaml`` (``model`` section) from the same seeded
initial weights, on the same packed blocks in the same order (the stage's seeded
permutation), with the same batch and block size and the same dropout RNG stream:

* ``baseline``: a minimal hand-written loop: fp32 eager, ``AdamW(lr)``, forward with
  labels, backward, step (no warmup, decay, clipping or weight-decay groups), on the GPT-2
  that transformers makes of this shape (``gelu_new``, attention dropout at ``model.dropout``:
  the same weights, neither setting has parameters);
* ``stage``: :func:`aitale.modeling.trainer.fit` itself, as ``stages.train`` calls it, with
  ``train.precision`` from params.yaml (``auto``: bf16 autocast on a CPU with native bf16).

The two run in lockstep, one optimizer step each in turn, so that other load on the machine
falls on both alike: ``fit`` drives, and its tracker's ``log_step`` (called after each of its
steps, outside the step time ``fit`` measures) runs the baseline's step, and one step of each
cheap variant of the stage's step (fused AdamW, eager attention, attention dropout or
``gelu_new`` put back, fp32, the plain loop on the stage's model; torch.compile and one
thread on request) for the first ``--variant-steps`` steps. Every run keeps its own
RNG state, so ``fit`` trains exactly as it would alone.

Tokens/s leave out the first ``--warmup`` steps (allocation, oneDNN kernel selection,
compilation). On a shared machine each step also records the share of the CPUs that other
processes took during it (/proc/stat); tokens/s are the median over the quiet steps (others
at most ``--quiet``) when there are enough of them, and ratios come from those medians or,
failing that, from the step-by-step ratios within the same lockstep rounds. After a round
that was not quiet the run pauses (up to ``--round-wait`` s, ``--max-wait`` s in all) until
the other processes leave the CPUs. Losses: the mean train loss over the last ``--tail``
steps and the val loss of the final weights, evaluated the same way (fp32) for every run.

    .venv/bin/python -m benchmarks.train_speed            # the stage's full schedule (~5 min idle)
    .venv/bin/python -m benchmarks.train_speed --quick    # 12 steps, one variant (~1 min)

Results: benchmarks/results/train_speed.json (with the machine), and a table on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.activations import NewGELUActivation

from aitale.generation.sampling import GenerationSettings
from aitale.machine import describe
from aitale.modeling import device as rt
from aitale.modeling import trainer
from aitale.modeling.blocks import Blocks, load_blocks
from aitale.modeling.checkpoint import Checkpoints
from aitale.modeling.model import build_model, model_context
from aitale.modeling.tracking import Tracker
from aitale.params import Hyperparams, ModelParams, TrainParams, load_section
from benchmarks.common import safety_args

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "train_speed.json"
QUICK_STEPS = 12
QUICK_VARIANTS = ["fused_adamw"]
GOAL_RATIO = 2.0
# A variant is worth adopting when it is this much faster than the stage's own step and its
# val loss is no more than LOSS_SLACK worse (compiled kernels and dropout masks differ a little).
CLEAR_SPEEDUP = 1.10
LOSS_SLACK = 0.02

log = logging.getLogger("train_speed")


# --- data --------------------------------------------------------------------------------


@dataclass
class Data:
    train_path: Path
    val_path: Path
    tokenizer_dir: Path
    source: str


def prepare_data(config: Path, fresh: bool, workdir: Path) -> Data:
    """The pipeline's own data: reused from data/processed + models/tokenizer, or made by the stages."""
    processed, tokenizer_dir = REPO / "data" / "processed", REPO / "models" / "tokenizer"
    have = all(
        p.is_file() for p in (processed / "train.jsonl", processed / "val.jsonl", tokenizer_dir / "tokenizer.json")
    )
    if have and not fresh:
        return Data(
            processed / "train.jsonl",
            processed / "val.jsonl",
            tokenizer_dir,
            "reused data/processed and models/tokenizer",
        )
    raw, processed, tokenizer_dir = workdir / "raw", workdir / "processed", workdir / "tokenizer"
    screen = workdir / "safety"
    commands = [
        ["stages.download", "--output-dir", raw],
        ["stages.safety", *safety_args(screen, workdir / "safety.json", workdir / "safety_plots")],
        [
            "stages.prepare",
            "--stories",
            REPO / "data" / "stories",
            "--books",
            raw,
            "--screen",
            screen,
            "--output-dir",
            processed,
            "--metrics",
            workdir / "data.json",
            "--books-table",
            workdir / "data_books.json",
            "--groups",
            workdir / "data_groups.json",
        ],
        ["stages.tokenizer", "--train", processed / "train.jsonl", "--output-dir", tokenizer_dir],
    ]
    for module, *args in commands:
        log.info("running %s", module)
        subprocess.run(
            [sys.executable, "-m", module, *map(str, args), "--config", str(config)],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return Data(
        processed / "train.jsonl",
        processed / "val.jsonl",
        tokenizer_dir,
        f"made by stages.download/safety/prepare/tokenizer in a temp dir ({config.name})",
    )


# --- measuring a step on a shared machine ------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
CPUS = os.cpu_count() or 1


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall clock, CPU seconds the whole machine was busy, CPU seconds of this process)."""
    wall = time.perf_counter()
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
        busy = (sum(fields[:3]) + sum(fields[5:8])) / CLOCK_TICKS
    except (OSError, ValueError):
        busy = math.nan
    own = os.times()
    return wall, busy, own.user + own.system


def other_load(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Share of the machine's CPUs that other processes (or the hypervisor) used in between."""
    wall = after[0] - before[0]
    if wall <= 0 or math.isnan(after[1]):
        return math.nan
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / (wall * CPUS))


# --- one run's step, outside fit ---------------------------------------------------------


@dataclass
class Run:
    """A training run stepped by hand: the baseline, or a variant of the stage's step."""

    name: str
    what: str
    model: PreTrainedModel
    step_fn: Callable[[torch.Tensor], float]
    steps: int
    rng: torch.Tensor
    threads: int | None = None
    adopt: str = ""
    times: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    error: str | None = None

    def step(self, batch: torch.Tensor) -> None:
        if self.error is not None or len(self.times) >= self.steps:
            return
        threads = torch.get_num_threads()
        torch.set_rng_state(self.rng)
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            before = cpu_snapshot()
            loss = self.step_fn(batch)
            after = cpu_snapshot()
            self.times.append(after[0] - before[0])
            self.others.append(other_load(before, after))
            self.losses.append(loss)
        except Exception as err:  # a variant that fails (e.g. no compiler) is reported, not fatal
            self.error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            log.warning("%s failed: %s", self.name, self.error)
        finally:
            self.rng = torch.get_rng_state()
            torch.set_num_threads(threads)


def baseline_run(model: PreTrainedModel, hp: Hyperparams, steps: int, rng: torch.Tensor) -> Run:
    """The plain loop: fp32 eager, AdamW at the same lr, forward with labels, backward, step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate)
    model.train()

    def step(batch: torch.Tensor) -> float:
        total = 0.0
        for chunk in batch.split(hp.batch_size):
            loss = model(input_ids=chunk, labels=chunk).loss
            (loss * len(chunk) / len(batch)).backward()
            total += loss.item() * len(chunk)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total / len(batch)

    return Run(
        "baseline",
        "plain PyTorch loop: fp32 eager, AdamW(lr), no schedule/clip, on the GPT-2 transformers makes of this "
        "shape (gelu_new, attention dropout = model.dropout)",
        model,
        step,
        steps,
        rng,
    )


def plain_gpt2(model: PreTrainedModel, dropout: float, only: str | None = None) -> PreTrainedModel:
    """A copy of ``model`` as transformers' GPT-2 defaults make it: attention dropout at ``dropout``, gelu_new.

    Same weights and shape: neither setting has parameters. ``only`` undoes just one of the two.
    """
    plain = copy.deepcopy(model)
    for block in plain.transformer.h:
        if only in (None, "attn_dropout"):
            block.attn.attn_dropout.p = dropout
        if only in (None, "gelu_new"):
            block.mlp.act = NewGELUActivation()
    return plain


def stage_like_run(
    name: str,
    what: str,
    model: PreTrainedModel,
    hp: Hyperparams,
    total: int,
    steps: int,
    rng: torch.Tensor,
    dtype: torch.dtype | None,
    *,
    fused: bool = False,
    compile_model: bool = False,
    threads: int | None = None,
    adopt: str = "",
) -> Run:
    """``fit``'s step (param groups, betas, warmup/decay, autocast, clipping) with one thing changed."""
    model.train()
    optimizer, scheduler = trainer.make_optimizer(model, hp.learning_rate, hp.weight_decay, hp.warmup_steps, total)
    if fused:
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in optimizer.param_groups]
        optimizer = torch.optim.AdamW(groups, lr=hp.learning_rate, betas=trainer.BETAS, fused=True)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, trainer.linear_warmup_decay(hp.warmup_steps, total))
    net = torch.compile(model) if compile_model else model

    def step(batch: torch.Tensor) -> float:
        total_loss = 0.0
        for chunk in batch.split(hp.batch_size):
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = net(input_ids=chunk, labels=chunk).loss
            (loss * len(chunk) / len(batch)).backward()
            total_loss += loss.item() * len(chunk)
        torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return total_loss / len(batch)

    return Run(name, what, model, step, steps, rng, threads=threads, adopt=adopt)


# --- the stage's fit, driving the others ----------------------------------------------------


class LockstepTracker(Tracker):
    """Records fit's own per-step figures; after each fit step, steps every other run once."""

    def __init__(
        self,
        runs: list[Run],
        batches: list[torch.Tensor],
        check_step: int,
        check: Callable[[], float],
        quiet: float = 1.0,
        max_wait: float = 0.0,
        round_wait: float = 0.0,
    ):
        unused = Path(tempfile.gettempdir()) / "unused-dvclive"
        super().__init__(unused, unused, enabled=False)
        self.quiet, self.wait_left, self.round_wait = quiet, max_wait, round_wait
        self.waited: list[float] = []
        self.runs, self.batches = runs, batches
        self.check_step, self.check = check_step, check
        self.times: list[float] = []
        self.others: list[float] = []
        self.losses: list[float] = []
        self.lrs: list[float] = []
        self.loads: list[float] = []
        self.val_at_check: float | None = None
        self.started = time.perf_counter()
        self.mark = cpu_snapshot()

    def start(self, resumed: bool, step: int) -> None:
        super().start(resumed, step)
        self.mark = cpu_snapshot()  # fit's first step starts right after this

    def log_step(self, step: int, metrics: dict[str, float], speed: dict[str, float]) -> None:
        now = cpu_snapshot()
        tokens = self.batches[step - 1].numel()
        self.times.append(tokens / speed["tokens_per_second"])  # fit's own step time
        self.others.append(other_load(self.mark, now))
        self.losses.append(metrics["train/loss"])
        self.lrs.append(metrics["train/lr"])
        self.loads.append(round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else math.nan)
        fit_rng = torch.get_rng_state()
        try:
            # Rotate the order so no run always follows the same one (caches, thread wake-up).
            shift = (step - 1) % max(1, len(self.runs))
            for run in self.runs[shift:] + self.runs[:shift]:
                run.step(self.batches[step - 1])
            if step == self.check_step:
                self.val_at_check = self.check()
        finally:
            torch.set_rng_state(fit_rng)
        done = ", ".join(
            f"{r.name} {r.times[-1]:.2f}s {r.losses[-1]:.3f}" for r in self.runs if r.losses and len(r.losses) == step
        )
        log.info(
            "step %3d  %6.1fs  others %3.0f%%  stage %.2fs %.3f  %s",
            step,
            time.perf_counter() - self.started,
            100 * self.others[-1],
            self.times[-1],
            self.losses[-1],
            done,
        )
        if step < len(self.batches):
            self.wait_for_quiet(step)
        self.mark = cpu_snapshot()  # fit's next step starts right after this returns

    def wait_for_quiet(self, step: int) -> None:
        """After a round in which other processes took the CPUs, pause until they leave (within the budget)."""
        latest = [self.others[-1]] + [r.others[-1] for r in self.runs if len(r.others) == step]
        if self.wait_left <= 0 or not any(o > self.quiet for o in latest if not math.isnan(o)):
            return
        began = time.perf_counter()
        limit = min(self.round_wait, self.wait_left)
        while time.perf_counter() - began < limit:
            before = cpu_snapshot()
            time.sleep(0.5)
            if other_load(before, cpu_snapshot()) <= self.quiet:
                break
        waited = time.perf_counter() - began
        self.wait_left -= waited
        self.waited.append(round(waited, 1))
        log.info(
            "waited %.1fs for other processes to leave the CPUs (%.0fs of waiting left)",
            waited,
            max(0.0, self.wait_left),
        )


# --- figures -----------------------------------------------------------------------------

MIN_QUIET = 5  # quiet steps needed on both sides to compare quiet medians


def speed(times: list[float], others: list[float], tokens: list[int], warmup: int, quiet: float) -> dict:
    """Throughput of one run; ``tokens[i]`` is step i's batch (the last step of an epoch is a short one)."""
    timed = list(zip(times, others, tokens))[warmup:]
    if not timed:
        return {"timed_steps": 0}
    rates = [n / t for t, _, n in timed]
    quiet_rates = [n / t for t, o, n in timed if o <= quiet]
    figures = {
        "timed_steps": len(timed),
        "quiet_steps": len(quiet_rates),
        "tokens_per_second_quiet_median": round(statistics.median(quiet_rates), 1) if quiet_rates else None,
        "tokens_per_second_median": round(statistics.median(rates), 1),
        "tokens_per_second_mean": round(sum(n for _, _, n in timed) / sum(t for t, _, _ in timed), 1),
        "other_load_median": round(statistics.median(o for _, o, _ in timed), 3),
        "first_steps_seconds": [round(t, 3) for t in times[:warmup]],
        "step_seconds": [round(t, 4) for t in times],
        "other_load_per_step": [round(o, 3) for o in others],
    }
    # The headline: quiet steps when there are enough of them, all timed steps otherwise.
    use_quiet = len(quiet_rates) >= MIN_QUIET
    figures["tokens_per_second"] = figures[
        "tokens_per_second_quiet_median" if use_quiet else "tokens_per_second_median"
    ]
    figures["tokens_per_second_basis"] = "median of quiet steps" if use_quiet else "median of all timed steps"
    return figures


def compare(fast: dict, slow: dict, warmup: int) -> dict:
    """fast/slow speed: from quiet medians when both have enough quiet steps, else paired by step."""
    rounds = min(len(fast["step_seconds"]), len(slow["step_seconds"]))
    paired = [slow["step_seconds"][i] / fast["step_seconds"][i] for i in range(warmup, rounds)]
    result = {
        "paired_median": round(statistics.median(paired), 3) if paired else None,
        "all_steps_medians": round(fast["tokens_per_second_median"] / slow["tokens_per_second_median"], 3),
        "quiet_medians": round(fast["tokens_per_second_quiet_median"] / slow["tokens_per_second_quiet_median"], 3)
        if min(fast["quiet_steps"], slow["quiet_steps"]) >= MIN_QUIET
        else None,
    }
    basis = "quiet_medians" if result["quiet_medians"] is not None else "paired_median"
    result.update(ratio=result[basis], basis=basis)
    return result


def loss_figures(losses: list[float], tail: int) -> dict:
    return {
        "train_loss_tail_mean": round(statistics.fmean(losses[-tail:]), 4) if losses else None,
        "train_loss_last": round(losses[-1], 4) if losses else None,
        "train_losses": [round(x, 4) for x in losses],
    }


def machine_info() -> dict:
    return {
        **describe(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# --- main --------------------------------------------------------------------------------


VARIANTS = {
    # name: (description, extra stage_like_run kwargs, model change, how aitale would adopt it)
    "stage_copy": ("the stage's step outside fit (control: should match fit)", {}, None, ""),
    "fused_adamw": (
        "stage + AdamW(fused=True)",
        {"fused": True},
        None,
        "aitale/modeling/trainer.py fit(): torch.optim.AdamW(_param_groups(model, hp.weight_decay), "
        "lr=hp.learning_rate, betas=BETAS, fused=True)",
    ),
    "compile": (
        "stage + torch.compile(model) (inductor)",
        {"compile_model": True},
        None,
        "aitale/modeling/trainer.py fit(): net = torch.compile(DistributedDataParallel(model) "
        "if runtime.world > 1 else model) (state_dict/evaluate/generate keep using `model`)",
    ),
    "eager_attention": (
        "stage with attn_implementation='eager' instead of the default sdpa",
        {},
        lambda m: m.set_attn_implementation("eager"),
        "aitale/modeling/model.py build_model(): GPT2Config(..., attn_implementation='eager')",
    ),
    "attn_dropout": (
        "stage with attention-probability dropout at model.dropout again (adopted: model.attn_dropout 0, which "
        "lets SDPA take its fused CPU kernel)",
        {},
        "attn_dropout",
        "",
    ),
    "gelu_new": (
        "stage with GPT-2's gelu_new written as five ops again (adopted: gelu_pytorch_tanh, the same function fused)",
        {},
        "gelu_new",
        "",
    ),
    "plain_same_model": (
        "the plain fp32 loop of the baseline on the stage's own model (attention dropout 0, fused tanh GELU)",
        {"plain": True},
        None,
        "",
    ),
    "one_thread": (
        "stage with torch.set_num_threads(1) (default: one thread per core)",
        {"threads": 1},
        None,
        "aitale/modeling/runtime.py start(): torch.set_num_threads(1) on CPU",
    ),
    "fp32": (
        "the stage's step with precision fp32 (same recipe, no autocast)",
        {"fp32": True},
        None,
        "train.precision: fp32 in params.yaml",
    ),
}
FULL_VARIANTS = ["fused_adamw", "eager_attention", "attn_dropout", "gelu_new", "fp32", "plain_same_model"]
# Variants that are comparisons (or an adopted change undone), not changes to adopt.
REFERENCE_ONLY = ("stage_copy", "fp32", "attn_dropout", "gelu_new", "plain_same_model")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run: {QUICK_STEPS} steps, variants {', '.join(QUICK_VARIANTS)} (~1 min)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps for baseline and stage (default: the stage's own planned total "
        f"from params.yaml; --quick: {QUICK_STEPS})",
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated variants of the stage step to try, from: "
        f"{', '.join(VARIANTS)}; 'none' for none (default: {','.join(FULL_VARIANTS)}; "
        f"--quick: {','.join(QUICK_VARIANTS)})",
    )
    parser.add_argument(
        "--variant-steps",
        type=int,
        default=None,
        help="steps each variant runs, from the start (default: 12; --quick: all steps)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the timing (default: 3)")
    parser.add_argument("--tail", type=int, default=5, help="last steps averaged for the train loss (default: 5)")
    parser.add_argument("--config", type=Path, default=REPO / "params.yaml", help="params file (default: params.yaml)")
    parser.add_argument(
        "--fresh-data",
        action="store_true",
        help="make the data with stages.download/prepare/tokenizer in a temp dir even when "
        "data/processed and models/tokenizer exist",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.15,
        help="a step counts as quiet when other processes used at most this share of the CPUs "
        "during it (default: %(default)s)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="seconds in all that the run may pause, between lockstep rounds, for other processes "
        "to leave the CPUs (after a step that was not quiet); 0 never waits "
        "(default: 600; --quick: 60)",
    )
    parser.add_argument(
        "--round-wait", type=float, default=30.0, help="longest pause before one round (default: %(default)s s)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON (default: %(default)s)")
    return parser


def variant_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The variants asked for (``--variants``, or the defaults of a full or quick run); unknown ones are an error."""
    names = args.variants or ",".join(QUICK_VARIANTS if args.quick else FULL_VARIANTS)
    names = [] if names == "none" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    return names


def quiet_logs() -> None:
    """This benchmark's progress on stderr; the libraries' own logs and warnings silenced."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "aitale", "datasets", "torch._inductor", "torch._dynamo"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")


# --- main: the steps ---------------------------------------------------------------------


@dataclass
class Setup:
    """What every run shares: params, data, the seeded initial model and the batches in the stage's order."""

    model_params: ModelParams
    train_params: TrainParams
    hp: Hyperparams  # the stage's, with max_steps set to this run's steps
    data: Data
    runtime: rt.Runtime  # the stage's (auto precision: bf16 autocast on a CPU with native bf16)
    fp32_runtime: rt.Runtime  # for the val losses, the same for every run
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel  # the stage's, which fit trains
    initial: PreTrainedModel  # a copy of its initial weights, for the other runs
    init_rng: torch.Tensor  # fit's dropout stream starts here, as in stages.train
    block_size: int
    train: Blocks
    val: Blocks
    per_step: int  # blocks per optimizer step
    planned: int  # the stage's own planned total of steps
    steps: int
    variant_steps: int
    batches: list[torch.Tensor]


def prepare(args: argparse.Namespace, model_params: ModelParams, train_params: TrainParams, workdir: Path) -> Setup:
    """The data, the stage's runtime and seeded model, and the batches of every step, as stages.train makes them."""
    hp = train_params.hp
    data = prepare_data(args.config.resolve(), args.fresh_data, workdir)
    runtime = rt.start(train_params.precision)  # as stages.train: auto -> bf16 on a CPU with native bf16
    fp32_runtime = rt.Runtime(device=torch.device("cpu"), rank=0, world=1, dtype=None)
    torch.manual_seed(train_params.seed)
    tokenizer = AutoTokenizer.from_pretrained(data.tokenizer_dir)
    model = build_model(model_params, tokenizer)
    init_rng = torch.get_rng_state()  # fit's dropout stream starts here in stages.train too
    initial = copy.deepcopy(model)

    block_size = min(hp.block_size, model_context(model))
    train = load_blocks(data.train_path, tokenizer, block_size)
    val = load_blocks(data.val_path, tokenizer, block_size)
    per_step = hp.batch_size * hp.grad_accum * runtime.world
    steps_per_epoch = math.ceil(len(train) / per_step)
    planned = steps_per_epoch * hp.epochs if hp.max_steps == 0 else min(hp.max_steps, steps_per_epoch * hp.epochs)
    steps = args.steps or (QUICK_STEPS if args.quick else planned)
    batches = [trainer.step_blocks(train, i, steps_per_epoch, per_step, train_params.seed) for i in range(steps)]
    return Setup(
        model_params=model_params,
        train_params=train_params,
        hp=hp.model_copy(update={"max_steps": steps}),
        data=data,
        runtime=runtime,
        fp32_runtime=fp32_runtime,
        tokenizer=tokenizer,
        model=model,
        initial=initial,
        init_rng=init_rng,
        block_size=block_size,
        train=train,
        val=val,
        per_step=per_step,
        planned=planned,
        steps=steps,
        variant_steps=min(steps, args.variant_steps or (steps if args.quick else min(12, steps))),
        batches=batches,
    )


def make_runs(setup: Setup, names: list[str]) -> list[Run]:
    """The baseline first, then each variant named, every one from the initial weights and RNG state."""
    hp, steps, variant_steps = setup.hp, setup.steps, setup.variant_steps
    runs = [baseline_run(plain_gpt2(setup.initial, setup.model_params.dropout), hp, steps, setup.init_rng.clone())]
    for name in names:
        what, kwargs, change, adopt = VARIANTS[name]
        kwargs = dict(kwargs)
        dtype = None if kwargs.pop("fp32", False) else setup.runtime.dtype
        copy_model = copy.deepcopy(setup.initial)
        if kwargs.pop("plain", False):
            plain = baseline_run(copy_model, hp, variant_steps, setup.init_rng.clone())
            runs.append(Run(name, what, copy_model, plain.step_fn, variant_steps, plain.rng))
            continue
        if change in ("attn_dropout", "gelu_new"):
            copy_model = plain_gpt2(copy_model, setup.model_params.dropout, only=change)
        elif change is not None:
            change(copy_model)
        runs.append(
            stage_like_run(
                name, what, copy_model, hp, steps, variant_steps, setup.init_rng.clone(), dtype, adopt=adopt, **kwargs
            )
        )
    return runs


@dataclass
class Lockstep:
    """What the lockstep run measured: fit's own figures (its tracker), fit's metrics, and its wall time."""

    tracker: LockstepTracker
    metrics: dict
    seconds: float


def run_lockstep(setup: Setup, runs: list[Run], args: argparse.Namespace, names: list[str], workdir: Path) -> Lockstep:
    """The stage's fit on its model, stepping every other run once after each of its steps."""
    hp, stage_model = setup.hp, setup.model
    max_wait = args.max_wait if args.max_wait is not None else (60.0 if args.quick else 600.0)
    tracker = LockstepTracker(
        runs,
        setup.batches,
        setup.variant_steps,
        lambda: trainer.evaluate_loss(stage_model, setup.val, hp.batch_size, setup.fp32_runtime),
        quiet=args.quiet,
        max_wait=max_wait,
        round_wait=args.round_wait,
    )
    schedule = trainer.Schedule(
        eval_every=setup.steps,
        patience=0,
        checkpoint_every=setup.steps,
        sample_every=setup.steps,
        sample_prompts=[],
        seed=setup.train_params.seed,
        sample_settings=GenerationSettings(),  # no samples: sample_prompts is empty
    )
    checkpoints = Checkpoints(workdir / "checkpoints", "train-speed")
    log.info(
        "%d steps of %d x %d tokens; stage precision %s; variants %s for %d steps; data: %s",
        setup.steps,
        setup.per_step,
        setup.block_size,
        setup.runtime.dtype or "fp32",
        names or "none",
        setup.variant_steps,
        setup.data.source,
    )
    torch.set_rng_state(setup.init_rng)
    fit_started = time.perf_counter()
    metrics = trainer.fit(
        stage_model, setup.tokenizer, setup.train, setup.val, hp, schedule, setup.runtime, checkpoints, tracker
    )
    return Lockstep(tracker, metrics, time.perf_counter() - fit_started)


def run_figures(setup: Setup, runs: list[Run], lockstep: Lockstep, args: argparse.Namespace) -> dict:
    """Each run's speed and losses, the stage's first; val losses of the final weights, in fp32 for all."""

    def val_loss(m: PreTrainedModel) -> float:
        return round(trainer.evaluate_loss(m, setup.val, setup.hp.batch_size, setup.fp32_runtime), 4)

    tracker, metrics = lockstep.tracker, lockstep.metrics
    step_tokens = [b.numel() for b in setup.batches]
    stage_val = val_loss(setup.model)
    at_check = round(tracker.val_at_check, 4) if tracker.val_at_check else None
    results = {
        "stage": {
            "what": f"aitale.modeling.trainer.fit, precision {setup.train_params.precision} -> "
            f"{str(setup.runtime.dtype or 'fp32').removeprefix('torch.')}",
            "steps": metrics["steps"],
            **speed(tracker.times, tracker.others, step_tokens, args.warmup, args.quiet),
            **loss_figures(tracker.losses, args.tail),
            "val_loss": stage_val,
            "val_loss_fit_reported": metrics["val_loss"],
            f"val_loss_at_step_{setup.variant_steps}": at_check,
            "learning_rates": [round(x, 6) for x in tracker.lrs],
        },
    }
    for run in runs:
        entry = {
            "what": run.what,
            "steps": len(run.times),
            **speed(run.times, run.others, step_tokens, args.warmup, args.quiet),
            **loss_figures(run.losses, args.tail),
            "val_loss": val_loss(run.model) if run.times else None,
        }
        if run.error:
            entry["error"] = run.error
        if run is not runs[0]:  # the baseline has nothing to adopt
            entry["adopt_by"] = run.adopt
        results[run.name] = entry
    return results


def comparison(results: dict, setup: Setup, warmup: int) -> dict:
    """The stage against the baseline: the speed ratio, against the goal, and the loss differences."""
    base, stage = results["baseline"], results["stage"]
    ratios = compare(stage, base, warmup)
    figures = {
        "stage_over_baseline_tokens_per_second": ratios["ratio"],
        "ratio_basis": ratios["basis"],
        "ratios": ratios,
        "goal": GOAL_RATIO,
        "speed_goal_met": ratios["ratio"] >= GOAL_RATIO,
        "val_loss_stage_minus_baseline": round(stage["val_loss"] - base["val_loss"], 4),
        "train_loss_tail_stage_minus_baseline": round(stage["train_loss_tail_mean"] - base["train_loss_tail_mean"], 4),
        "loss_no_worse": stage["val_loss"] <= base["val_loss"],
    }
    if setup.steps <= setup.hp.warmup_steps:
        figures["loss_note"] = (
            f"{setup.steps} steps is within the stage's {setup.hp.warmup_steps}-step lr warmup (the "
            "baseline runs at full lr from step 1): compare losses on a full run"
        )
    return figures


def verdict(name: str, speedup: float, dval: float, adopt_by: str) -> str:
    """Whether a variant is worth adopting: clearly faster than the stage, its val loss no worse than the slack."""
    if name in REFERENCE_ONLY:
        return "reference only"
    if speedup >= CLEAR_SPEEDUP and dval <= LOSS_SLACK:
        return f"adopt: {adopt_by}"
    if speedup < CLEAR_SPEEDUP:
        return f"no clear gain (< x{CLEAR_SPEEDUP})"
    return f"faster but val loss worse by > {LOSS_SLACK}"


def variant_figures(results: dict, names: list[str], tracker: LockstepTracker, setup: Setup, args) -> dict:
    """Each variant against the stage over the variants' first steps: speedup, loss differences, verdict."""
    stage, variant_steps = results["stage"], setup.variant_steps
    stage_tail = statistics.fmean(tracker.losses[max(0, variant_steps - args.tail) : variant_steps])
    variants = {}
    for name in names:
        entry = results[name]
        if entry.get("error") or not entry.get("timed_steps"):
            variants[name] = {"verdict": "failed" if entry.get("error") else "not timed"}
            continue
        ratios = compare(entry, stage, args.warmup)
        dval = entry["val_loss"] - stage[f"val_loss_at_step_{variant_steps}"]
        variants[name] = {
            "speedup_over_stage": ratios["ratio"],
            "speedup_basis": ratios["basis"],
            "speedups": ratios,
            "val_loss_minus_stage_at_same_step": round(dval, 4),
            "train_loss_tail_minus_stage": round(entry["train_loss_tail_mean"] - stage_tail, 4),
            "verdict": verdict(name, ratios["ratio"], dval, entry["adopt_by"]),
        }
    return variants


def machine_figures(load_before: list[float], tracker: LockstepTracker) -> dict:
    return {
        **machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "load_1min_during_steps": {
            "min": min(tracker.loads),
            "median": statistics.median(tracker.loads),
            "max": max(tracker.loads),
        },
    }


def setup_figures(setup: Setup, metrics: dict, args: argparse.Namespace) -> dict:
    """What was run: params, steps, tokens, data, and how the figures were measured."""
    tokens_per_step = setup.per_step * setup.block_size
    step_tokens = [b.numel() for b in setup.batches]
    return {
        "model": setup.model_params.model_dump(),
        "hyperparams": setup.hp.model_dump(),
        "precision_param": setup.train_params.precision,
        "stage_autocast_dtype": str(setup.runtime.dtype or "fp32").removeprefix("torch."),
        "parameters": metrics["parameters"],
        "steps": setup.steps,
        "stage_planned_steps": setup.planned,
        "variant_steps": setup.variant_steps,
        "warmup_steps_excluded": args.warmup,
        "tail_steps": args.tail,
        "tokens_per_step": tokens_per_step,
        "short_steps": {i + 1: n for i, n in enumerate(step_tokens) if n != tokens_per_step},
        "train_blocks": len(setup.train),
        "train_tokens": setup.train.tokens,
        "val_blocks": len(setup.val),
        "data": setup.data.source,
        "seed": setup.train_params.seed,
        "timing": "lockstep: fit drives, every other run takes its step after each fit step; step times are "
        "fit's own perf/tokens_per_second and the same span for the others (batch to zero_grad)",
        "quiet_step": f"a step during which other processes used at most {args.quiet:.0%} of the machine's "
        "CPUs (/proc/stat busy time minus this process's CPU time)",
        "ratios": f"quiet medians when both sides have >= {MIN_QUIET} quiet steps, else the median of the "
        "per-step ratios of the same lockstep rounds",
        "val_loss_eval": "trainer.evaluate_loss in fp32 on the whole val split, the same for every run",
    }


def non_padding(setup: Setup) -> dict:
    """The share of each batch's tokens that are not padding (all of them when the tokenizer has no pad)."""
    pad = setup.tokenizer.pad_token_id
    fractions = [float((b != pad).float().mean()) if pad is not None else 1.0 for b in setup.batches]
    return {
        "mean": round(statistics.fmean(fractions), 6),
        "min": round(min(fractions), 6),
        "pad_token_id": pad,
        "batches": len(fractions),
    }


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    quiet_logs()
    names = variant_names(cli, args)

    began = time.perf_counter()
    load_before = load_average()
    model_params = load_section(ModelParams, "model", args.config)
    train_params = load_section(TrainParams, "train", args.config)
    if not model_params.scratch:
        log.warning("model.base is %s, not scratch: the benchmark will fine-tune it (slow on CPU)", model_params.base)

    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        setup = prepare(args, model_params, train_params, Path(tmp))
        runs = make_runs(setup, names)
        lockstep = run_lockstep(setup, runs, args, names, Path(tmp))
        results = run_figures(setup, runs, lockstep, args)

    tracker = lockstep.tracker
    compared = comparison(results, setup, args.warmup)
    variants = variant_figures(results, names, tracker, setup, args)
    report = {
        "benchmark": "benchmarks.train_speed",
        "quick": args.quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_figures(load_before, tracker),
        "setup": setup_figures(setup, lockstep.metrics, args),
        "non_padding_fraction": non_padding(setup),
        "not_measured": {
            "channels_last": "a memory format for 4-D (NCHW) conv activations; GPT-2 has no conv layers, "
            "so there is nothing for it to change",
        },
        "comparison": compared,
        "variants": variants,
        "runs": results,
        "lockstep_seconds": round(lockstep.seconds, 1),
        "waited_for_quiet_seconds": round(sum(tracker.waited), 1),
        "waits": tracker.waited,
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    print(f"\nwritten {args.output}")
    return 0


def print_table(report: dict) -> None:
    runs, setup, machine = report["runs"], report["setup"], report["machine"]
    during = machine["load_1min_during_steps"]
    print(
        f"\n{machine['cpu_model']} ({', '.join(machine['cpu_flags_of_note'])}), {machine['logical_cpus']} CPUs, "
        f"torch {machine['torch']}, {machine['torch_threads']} threads; "
        f"1-min load during the steps {during['median']} (median, {during['min']}-{during['max']})"
    )
    short = f", {len(setup['short_steps'])} short epoch-end steps" if setup["short_steps"] else ""
    print(
        f"{setup['steps']} steps x {setup['tokens_per_step']} tokens{short} "
        f"(variants: first {setup['variant_steps']}); "
        f"timing leaves out the first {setup['warmup_steps_excluded']}; non-padding fraction "
        f"{report['non_padding_fraction']['mean']:.4f} (min {report['non_padding_fraction']['min']:.4f})"
    )
    header = (
        f"{'run':<16}{'steps':>6}{'quiet':>6}{'tok/s':>9}{'tok/s all':>10}{'others':>8}"
        f"{'tail loss':>10}{'val loss':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, run in runs.items():
        if not run.get("timed_steps"):
            print(f"{name:<16}{run.get('steps', 0):>6}  {run.get('error', 'not timed')}")
            continue
        star = "" if run["tokens_per_second_basis"].startswith("median of quiet") else "*"
        print(
            f"{name:<16}{run['steps']:>6}{run['quiet_steps']:>6}{run['tokens_per_second']:>8.0f}{star:1}"
            f"{run['tokens_per_second_median']:>10.0f}{run['other_load_median']:>8.0%}"
            f"{run['train_loss_tail_mean']:>10.3f}{run['val_loss']:>10.3f}"
        )
    print(
        "tok/s: median over quiet steps (* too few quiet steps: all timed steps); tok/s all: median over all "
        "timed steps; others: median CPU share other processes took during its steps"
    )
    c = report["comparison"]
    print(
        f"\nstage/baseline tokens/s: {c['stage_over_baseline_tokens_per_second']:.2f} ({c['ratio_basis']}; "
        f"goal {c['goal']}: {'met' if c['speed_goal_met'] else 'NOT met'}); val loss stage - baseline: "
        f"{c['val_loss_stage_minus_baseline']:+.3f} ({'no worse' if c['loss_no_worse'] else 'worse'})"
    )
    if "loss_note" in c:
        print(f"  note: {c['loss_note']}")
    stage_val = runs["stage"].get(f"val_loss_at_step_{setup['variant_steps']}")
    if report["variants"]:
        print(f"variants vs the stage at step {setup['variant_steps']} (stage val loss there: {stage_val}):")
    for name, v in report["variants"].items():
        if "speedup_over_stage" in v:
            print(
                f"  {name:<16} x{v['speedup_over_stage']:.2f} ({v['speedup_basis']}), val loss "
                f"{v['val_loss_minus_stage_at_same_step']:+.3f}: {v['verdict']}"
            )
        else:
            print(f"  {name:<16} {v['verdict']}")


if __name__ == "__main__":
    sys.exit(main())
