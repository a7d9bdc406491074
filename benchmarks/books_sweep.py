"""The sweeps: queued ``dvc exp run`` points on the ten reference books or the 87-book library, each given
the same CPU time.

A point is a set of ``-S`` values (model shape, vocabulary, learning rate and schedule, batch,
dropout). Every point gets the same compute: its step count is the budget over its step's
floating-point operations (:func:`step_flops`), with one reference point's step timed here to turn
minutes into operations. Counting operations rather than timing each point keeps a busy machine from
giving one point more steps than another. Every point runs the pipeline up to ``train`` and is
scored by validation bits per byte; the table is ``dvc exp show``'s, and each point's measured
training time is in the results.

    make books-sweep                                   # the Makefile passes the books' -S values
    make library-sweep                                 # the library's points (--corpus library)
    .venv/bin/python -m benchmarks.books_sweep --minutes 3 -S data.gutenberg.books=[...] ...

``--native-bf16`` runs the points on the CPU's own kernels in bf16 autocast where it has native bf16
(``AITALE_NATIVE_MATH=1``, ``train.precision=bf16``): faster, and the figures then hold for this kind of
CPU. ``--step-seconds`` gives the reference step's time measured beforehand on an idle machine, so that a
busy machine does not shrink every point's budget.

Results: benchmarks/results/<corpus>_sweep.json, and the loss-against-time curves in
benchmarks/results/<corpus>_sweep.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import torch
import yaml
from dvc import api as dvc_api
from transformers import GPT2LMHeadModel

from aitale.machine import NATIVE, cpu_flags
from aitale.machine import describe as describe_machine
from aitale.modeling.model import gpt2_config
from aitale.modeling.tracking import loss_curve
from aitale.modeling.trainer import make_optimizer, optimizer_step
from aitale.params import ModelParams, TrainParams, set_dotted, validate

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results"

# The old recipe (the defaults before issue 16, with the books' larger vocabulary), then one or two
# changes at a time from the new settings, so each row says what one choice is worth.
NEW = {
    "model.vocab_size": 8192,
    "model.dropout": 0.0,
    "train.scratch.learning_rate": 3.0e-3,
    "train.scratch.schedule": "cosine",
}
POINTS: dict[str, dict] = {
    "old": {"model.vocab_size": 8192},
    "new": NEW,
    "vocab4k": {**NEW, "model.vocab_size": 4096},
    "lr5e-3": {**NEW, "train.scratch.learning_rate": 5.0e-3},
    "deep6": {**NEW, "model.n_layer": 6},
    "wide384": {**NEW, "model.n_embd": 384, "model.n_head": 6},
    "narrow2x192": {**NEW, "model.n_layer": 2, "model.n_embd": 192, "model.n_head": 3},
    "ctx128": {**NEW, "model.context": 128, "train.scratch.block_size": 128, "train.scratch.batch_size": 32},
    "batch32": {**NEW, "train.scratch.batch_size": 32, "train.scratch.learning_rate": 4.0e-3},
}
REFERENCE = "new"  # the point whose step is timed to turn minutes into operations
# The library (4.6 M words): compute-bound, so size, shape and vocabulary around the books' winner, at
# dropout 0 (each token is seen a few times at most).
LIBRARY_BASE = {**NEW, "model.n_layer": 4}
LIBRARY_POINTS: dict[str, dict] = {
    "base4x256": LIBRARY_BASE,
    "deep6": {**LIBRARY_BASE, "model.n_layer": 6},
    "wide4x384": {**LIBRARY_BASE, "model.n_embd": 384, "model.n_head": 6},
    "small3x192": {**LIBRARY_BASE, "model.n_layer": 3, "model.n_embd": 192, "model.n_head": 3},
    "vocab4k": {**LIBRARY_BASE, "model.vocab_size": 4096},
    "ctx512": {**LIBRARY_BASE, "model.context": 512, "train.scratch.block_size": 512, "train.scratch.batch_size": 8},
    "lr6e-3": {**LIBRARY_BASE, "train.scratch.learning_rate": 6.0e-3},
    "batch32": {**LIBRARY_BASE, "train.scratch.batch_size": 32, "train.scratch.learning_rate": 4.0e-3},
}
SWEEPS = {"books": (POINTS, REFERENCE), "library": (LIBRARY_POINTS, "base4x256")}
COLUMNS = [
    "model.vocab_size",
    "model.n_layer",
    "model.n_embd",
    "model.context",
    "model.dropout",
    "train.scratch.learning_rate",
    "train.scratch.schedule",
    "train.scratch.batch_size",
    "train.scratch.max_steps",
]


def parse_value(text: str):
    return yaml.safe_load(text)


def point_params(settings: dict) -> tuple[ModelParams, TrainParams]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in settings.items():
        params = set_dotted(params, key.lstrip("+"), value)  # "++key": DVC's override that may add keys
    return validate(ModelParams, "model", params["model"]), validate(TrainParams, "train", params["train"])


def step_flops(settings: dict) -> float:
    """Training operations of one optimizer step: 6 per weight per token (forward and backward) for the
    blocks and the output head, plus attention's scores and weighted sums (Kaplan et al. 2020, sec. 2.1)."""
    model, train = point_params(settings)
    hp = train.hp
    weights = model.n_layer * 12 * model.n_embd**2 + model.n_embd * model.vocab_size
    attention = model.n_layer * 2 * hp.block_size * model.n_embd  # per token, forward: 2 x (QK^T and AV)
    return hp.batch_size * hp.grad_accum * hp.block_size * (6 * weights + 3 * attention)


def step_seconds(settings: dict, steps: int = 6, warmup: int = 2) -> float:
    """Seconds per optimizer step of this point's model and batch, on random tokens (median)."""
    model_params, train_params = point_params(settings)
    hp = train_params.hp
    torch.manual_seed(0)
    config = gpt2_config(
        vocab_size=model_params.vocab_size,
        context=model_params.context,
        n_layer=model_params.n_layer,
        n_head=model_params.n_head,
        n_embd=model_params.n_embd,
        dropout=model_params.dropout,
        attn_dropout=model_params.attn_dropout,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )
    model = GPT2LMHeadModel(config).train()
    optimizer, scheduler = make_optimizer(model, hp.learning_rate, hp.weight_decay, 1, 1000)
    times = []
    for _ in range(warmup + steps):
        x = torch.randint(0, model_params.vocab_size, (hp.batch_size * hp.grad_accum, hp.block_size))
        started = time.perf_counter()
        for chunk in x.split(hp.batch_size):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=train_params.precision == "bf16"):
                loss = model(input_ids=chunk, labels=chunk).loss
            loss.backward()
        optimizer_step(model, optimizer, scheduler)
        times.append(time.perf_counter() - started)
    times = sorted(times[warmup:])
    return times[len(times) // 2]


def dvc(*args: str) -> str:
    return subprocess.run(["dvc", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout


LOSS_TSV = "dvclive/train/plots/metrics/train/loss.tsv"
SECONDS_TSV = "metrics/speed/train/plots/metrics/elapsed_seconds.tsv"


def curve(rev: str) -> list[list[float]]:
    """An experiment's loss against time, from the files its train stage wrote."""
    return loss_curve(*(dvc_api.read(path, repo=str(REPO), rev=rev) for path in (LOSS_TSV, SECONDS_TSV)))


def make_plan(
    shared: dict, corpus: str, names: list[str], minutes: float, seconds: float | None = None
) -> tuple[float, float, dict]:
    """(the reference step's seconds, the operations a point may spend, {point: its settings and steps})."""
    points, reference_name = SWEEPS[corpus]
    reference = {**shared, **points[reference_name]}
    seconds = seconds or step_seconds(reference)
    budget = minutes * 60 / seconds * step_flops(reference)
    print(f"{reference_name}: {seconds:.2f} s a step; {budget:.3g} operations a point", flush=True)
    plan = {}
    for name in names:
        settings = {**shared, **points[name]}
        steps = max(10, int(budget / step_flops(settings)))
        plan[name] = {"settings": settings, "step_flops": step_flops(settings), "max_steps": steps}
        print(f"{name}: {steps} steps", flush=True)
    return seconds, budget, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=sorted(SWEEPS), default="books", help="whose points (default books)")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time per point (default 3)")
    parser.add_argument(
        "-S", dest="shared", action="append", default=[], metavar="KEY=VALUE", help="a setting every point gets"
    )
    parser.add_argument("--points", nargs="*", help="which points (default: all of the corpus's)")
    parser.add_argument("--prefix", default="sweep", help="experiment names are PREFIX-POINT (default sweep)")
    parser.add_argument("--step-seconds", type=float, help="the reference step's time, measured beforehand")
    parser.add_argument("--native-bf16", action="store_true", help="the CPU's own kernels, bf16 where native")
    parser.add_argument(
        "--collect", action="store_true", help="only gather the results of the experiments the last run planned"
    )
    args = parser.parse_args()
    shared = {key: parse_value(value) for key, value in (item.split("=", 1) for item in args.shared)}
    if args.native_bf16:
        os.environ[NATIVE] = "1"  # the queue's workers inherit it, and so every stage they run
        if {"avx512_bf16", "amx_bf16"} & set(cpu_flags()):
            shared["train.precision"] = "bf16"
    load_before = [round(x, 2) for x in os.getloadavg()]
    planned = RESULTS / f"{args.corpus}_sweep.plan.json"
    if args.collect:
        saved = json.loads(planned.read_text())
    else:
        names = args.points or list(SWEEPS[args.corpus][0])
        saved = run_points(shared, args, names, planned)
    plan = saved["plan"]
    table = collect(plan, saved["baseline"], args.prefix)
    done = {name: p for name, p in plan.items() if "val_bits_per_byte" in p}
    winner = min(done, key=lambda name: done[name]["val_bits_per_byte"]) if done else None
    result = {
        "benchmark": "benchmarks.books_sweep",
        "corpus": args.corpus,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "baseline": saved["baseline"],
        "machine": describe_machine(),
        "minutes_per_point": args.minutes,
        "reference_step_seconds": round(saved["seconds"], 3),
        "operations_per_point": saved["budget"],
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "shared": shared,
        "wall_seconds": round(saved["wall"], 1) if saved.get("wall") else None,
        "winner": winner,
        "points": plan,
        "table": table,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.corpus}_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(done, RESULTS / f"{args.corpus}_sweep.png", args.minutes, args.corpus)
    print(table)
    print(f"winner by val bits per byte: {winner}")


def run_points(shared: dict, args, names: list[str], planned: Path) -> dict:
    """Plan the points, queue one `dvc exp run` up to train for each, and run the queue one at a time."""
    baseline = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()  # the commit the experiments branch from: `dvc exp show --rev` finds them after it
    seconds, budget, plan = make_plan(shared, args.corpus, names, args.minutes, args.step_seconds)
    saved = {"baseline": baseline, "seconds": seconds, "budget": budget, "plan": plan}
    planned.write_text(json.dumps(saved, indent=2) + "\n")
    for name, point in plan.items():
        steps = point["max_steps"]
        run = {
            **{key: value for key, value in point["settings"].items() if key not in shared},
            "train.scratch.max_steps": steps,
            "train.scratch.epochs": 1000,  # the step count is the budget
            "train.eval_every": steps,  # one validation pass, at the end
            "train.checkpoint_every": steps,
            "train.sample_every": steps,
            "train.patience": 0,
        }
        # the shared settings as given (DVC parses them), the point's own as JSON
        given = [part for item in args.shared for part in ("-S", item)] + (
            ["-S", "train.precision=bf16"] if shared.get("train.precision") == "bf16" else []
        )
        sets = given + [part for key, value in run.items() for part in ("-S", f"{key}={json.dumps(value)}")]
        dvc("exp", "run", "--queue", "-f", "-n", f"{args.prefix}-{name}", *sets, "train")
    started = time.perf_counter()
    subprocess.run(["dvc", "exp", "run", "--run-all", "-j", "1"], cwd=REPO, check=True)
    saved["wall"] = time.perf_counter() - started
    planned.write_text(json.dumps(saved, indent=2) + "\n")
    return saved


def collect(plan: dict, baseline: str, prefix: str) -> str:
    """Each planned point's results from its experiment (in place), and `dvc exp show`'s table."""
    shown = json.loads(dvc("exp", "show", "--json", "--no-pager", "--rev", baseline))
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for revision in exp.get("revs", []):
                data = revision.get("data") or {}
                name = (revision.get("name") or data.get("name") or "").removeprefix(f"{prefix}-")
                if name in plan:
                    found[name] = (revision["rev"], data)
    for name, point in plan.items():
        if name not in found:
            point["error"] = "the experiment did not finish (see dvc queue logs)"
            continue
        rev, data = found[name]
        metrics = data["metrics"]["metrics/train.json"]["data"]
        point.update(
            rev=rev,
            val_bits_per_byte=metrics["val_bits_per_byte"],
            val_loss=metrics["val_loss"],
            steps=metrics["steps"],
            tokens_seen=metrics["tokens_seen"],
            parameters=metrics["parameters"],
            curve=curve(rev),
        )
        point["train_seconds"] = point["curve"][-1][0]
    return dvc(
        "exp", "show", "--md", "--no-pager", "--rev", baseline, "--drop", ".*", "--keep",
        "|".join(["Experiment", *COLUMNS, "metrics/train.json:val_bits_per_byte", "metrics/train.json:tokens_seen"]),
    )  # fmt: skip


def plot(points: dict, path: Path, minutes: float, corpus: str = "books") -> None:
    # Nats per token are not comparable across vocabularies: each curve is scaled by its point's own
    # val bits-per-byte / loss ratio (its tokenizer's bytes per token on the val split).
    curves = {
        f"{name} ({point['val_bits_per_byte']:.3f} val bpb)": (
            point["curve"],
            point["val_bits_per_byte"] / point["val_loss"],
        )
        for name, point in sorted(points.items(), key=lambda item: item[1]["val_bits_per_byte"])
    }
    title = f"{corpus.capitalize()} sweep: equal operations a point ({minutes:g} min of the reference step)"
    plot_curves(curves, path, title)


def plot_curves(curves: dict[str, tuple[list, float]], path: Path, title: str) -> None:
    """Train loss against minutes of training, one line per ``label: (curve, bits-per-byte scale)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for label, (points, scale) in curves.items():
        seconds, losses = zip(*points)
        axes.plot([s / 60 for s in seconds], [loss * scale for loss in losses], label=label, linewidth=1)
    axes.set(xlabel="minutes of training", ylabel="train bits per byte (val bytes/token)", title=title)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
