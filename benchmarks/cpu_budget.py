"""What a fixed CPU time budget reaches on the ten reference books, as test bits per byte.

Downloads the reference books from a local mirror, prepares them with the repository's
params, learns the tokenizer, then trains the default scratch model for as many steps as
fit in ``--minutes`` (estimated from a short timed run) and scores the test split with the
evaluate stage's sliding window. For scale: compression gives about 2.1 bits per byte on
such text, GPT-2 124M about 1.0-1.1.

    .venv/bin/python -m benchmarks.cpu_budget --minutes 30
    .venv/bin/python -m benchmarks.cpu_budget --minutes 2     # a quick look
    make books-budget                                         # the books recipe's settings (-S values)
    make books-budget-old                                     # the recipe before the sweep, for its curve

Results: benchmarks/results/cpu_budget.json (``--output``) and a loss-against-time plot beside it,
with the curves of the ``--compare`` results drawn on the same axes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from aitale.machine import NATIVE, cpu_flags, describe
from aitale.modeling.tracking import loss_curve
from aitale.params import set_dotted
from benchmarks.books_sweep import plot_curves
from benchmarks.common import safety_args

REPO = Path(__file__).resolve().parents[1]
BOOKS = [28, 503, 640, 2591, 5314, 7128, 11339, 17208, 22373, 29021]


def stage(name: str, config: Path, *args: str) -> float:
    """Run stage ``name``, unless an earlier run in the same --work folder finished it: its seconds, then."""
    done = config.parent / "seconds.json"
    seconds = json.loads(done.read_text()) if done.exists() else {}
    key = f"{name} -> {args[args.index('--output-dir') + 1]}"
    if key not in seconds:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"stages.{name}", "--config", str(config), *args], cwd=REPO, check=True)
        seconds[key] = time.perf_counter() - started
        done.write_text(json.dumps(seconds, indent=1))
    else:
        print(f"{name}: done by an earlier run in {config.parent}", flush=True)
    return seconds[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget in minutes (default 30)")
    parser.add_argument(
        "--mirror", default=os.environ.get("AITALE_CORPUS", str(REPO.parent / "shared/corpus/gutenberg"))
    )
    parser.add_argument("--vocab-size", type=int, default=8192, help="BPE vocabulary for the larger corpus")
    parser.add_argument(
        "-S", dest="settings", action="append", default=[], metavar="KEY=VALUE", help="a params value (as -S)"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "benchmarks/results/cpu_budget.json", help="the result file (JSON)"
    )
    parser.add_argument(
        "--compare", type=Path, action="append", default=[], help="another result whose curve joins the plot"
    )
    parser.add_argument("--replot", action="store_true", help="only redraw the plot of --output and --compare")
    parser.add_argument(
        "--work", type=Path, help="the working folder (default: a new temporary one); a stopped run's folder goes on"
    )
    parser.add_argument(
        "--step-seconds", type=float, help="seconds a training step takes on an idle machine (default: a timed probe)"
    )
    parser.add_argument("--native-bf16", action="store_true", help="the CPU's own kernels, bf16 where native")
    parser.add_argument("--title", default="the ten books", help="what the plot's title says was trained on")
    args = parser.parse_args()
    if args.replot:
        plot([json.loads(args.output.read_text())], args.compare, args.output.with_suffix(".png"), args.title)
        return
    load_before = os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="cpu-budget-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"working in {work}", flush=True)
    budget = Budget(work, budget_params(args))
    timings = budget.prepare()
    steps = budget.steps(args.minutes, args.step_seconds)
    timings["train"] = budget.train(steps)
    timings["evaluate"] = budget.evaluate()
    result = summary(budget, args, timings, load_before, steps)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    plot([result], args.compare, args.output.with_suffix(".png"), args.title)
    print(json.dumps({k: v for k, v in result.items() if k not in ("curve", "previous_run")}, indent=2))


def budget_params(args) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["gutenberg"].update(books=BOOKS, mirror=args.mirror)
    params["model"]["vocab_size"] = args.vocab_size
    if args.native_bf16:
        os.environ[NATIVE] = "1"  # every stage process this one starts inherits it
        if {"avx512_bf16", "amx_bf16"} & set(cpu_flags()):
            params["train"]["precision"] = "bf16"
    for key, value in ((k, yaml.safe_load(v)) for k, v in (item.split("=", 1) for item in args.settings)):
        params = set_dotted(params, key.lstrip("+"), value)  # "++key": DVC's override that may add keys
    return params


class Budget:
    """The stages of one budget run, each in ``work``, on one params file that the run rewrites as it goes."""

    def __init__(self, work: Path, params: dict):
        self.work, self.params, self.config = work, params, work / "params.yaml"

    def write(self, max_steps: int, epochs: int, eval_every: int = 25) -> None:
        self.params["train"]["scratch"].update(max_steps=max_steps, epochs=epochs)
        self.params["train"].update(
            patience=0, eval_every=eval_every, checkpoint_every=eval_every, sample_every=max(eval_every, max_steps)
        )
        self.config.write_text(yaml.safe_dump(self.params, sort_keys=False))

    def run(self, name: str, *args: str) -> float:
        return stage(name, self.config, *args)

    def prepare(self) -> dict[str, float]:
        w = self.work
        self.write(0, 1)
        return {
            "safety": self.run("safety", *safety_args(w / "safety", w / "safety.json", w / "safety_plots")),
            "download": self.run("download", "--output-dir", str(w / "raw")),
            "prepare": self.run(
                "prepare", "--stories", str(REPO / "data/stories"), "--books", str(w / "raw"), "--screen",
                str(w / "safety"), "--output-dir", str(w / "processed"), "--metrics", str(w / "data.json"),
            ),
            "tokenizer": self.run(
                "tokenizer", "--train", str(w / "processed/train.jsonl"), "--output-dir", str(w / "tokenizer")
            ),
        }  # fmt: skip

    def train_args(self, name: str) -> list[str]:
        w = self.work
        return [
            "--tokenizer", str(w / "tokenizer"), "--train", str(w / "processed/train.jsonl"),
            "--val", str(w / "processed/val.jsonl"), "--output-dir", str(w / name), "--checkpoints",
            str(w / f"{name}-ckpt"), "--live", str(w / f"{name}-live"), "--speed", str(w / f"{name}-speed"),
            "--metrics", str(w / f"{name}.json"),
        ]  # fmt: skip

    def steps(self, minutes: float, step_seconds: float | None) -> int:
        """The steps that fit the budget: from an idle machine's step time when given, else from a probe's own
        tokens/s curve (so start-up and saving don't skew it); ten validation passes budgeted on top."""
        if step_seconds is None:
            self.write(30, 100, eval_every=1000)
            self.run("train", *self.train_args("probe"))
            rates = (self.work / "probe-speed/plots/metrics/tokens_per_second.tsv").read_text().split()[3::2]
            scratch = self.params["train"]["scratch"]
            step_seconds = (
                scratch["batch_size"] * scratch["block_size"] / statistics.median(float(r) for r in rates[5:])
            )
        return max(30, int(minutes * 60 * 0.97 / step_seconds))

    def train(self, steps: int) -> float:
        self.write(steps, 1000, eval_every=max(1, steps // 10))
        return self.run("train", *self.train_args("model"))

    def evaluate(self) -> float:
        w = self.work
        return self.run(
            "evaluate", "--model-path", str(w / "model"), "--test-dataset", str(w / "processed/test.jsonl"),
            "--holdout", str(w / "processed/holdout.jsonl"), "--screen", str(w / "safety"),
            "--labelled", str(REPO / "data/safety/passages.jsonl"), "--output-dir", str(w / "eval"),
        )  # fmt: skip


def summary(budget: Budget, args, timings: dict, load_before, steps: int) -> dict:
    w = budget.work
    evaluation = json.loads((w / "eval/eval.json").read_text())
    train = json.loads((w / "model.json").read_text())
    data = json.loads((w / "data.json").read_text())
    curve = loss_curve(
        (w / "model-live/plots/metrics/train/loss.tsv").read_text(),
        (w / "model-speed/plots/metrics/elapsed_seconds.tsv").read_text(),
    )
    previous = json.loads(args.output.read_text()) if args.output.exists() else None
    return {
        "budget_minutes": args.minutes,
        "settings": {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.settings)},
        "precision": train["precision"],
        "math_path": train.get("math_path"),
        "step_seconds_given": args.step_seconds,
        "machine": describe(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "train_minutes": round(timings["train"] / 60, 2),
        "steps": train["steps"],
        "epochs": train["epochs"],
        "train_tokens": train["train_tokens"],
        "tokens_seen": train["tokens_seen"],
        "parameters": train["parameters"],
        "val_loss": train["val_loss"],
        "val_bits_per_byte": train.get("val_bits_per_byte"),
        "test_bits_per_byte": evaluation["bits_per_byte"],
        "test_perplexity": evaluation["perplexity"],
        "test_bits_per_byte_by_collection": {k: v["bits_per_byte"] for k, v in evaluation["by_collection"].items()},
        "holdout_bits_per_byte": (evaluation.get("holdout") or {}).get("bits_per_byte"),
        "holdout_bits_per_byte_by_collection": {
            k: v["bits_per_byte"] for k, v in (evaluation.get("holdout_by_collection") or {}).items()
        },
        "holdout_stories": (evaluation.get("holdout") or {}).get("stories"),
        "dataset_words": data["words"],
        "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
        "reference_points": {"compression_bpb": 2.1, "gpt2_124m_bpb": "1.0-1.1"},
        # [seconds of training, train loss in nats/token] at each step: the loss-against-time curve
        "curve": curve,
        "previous_run": {k: v for k, v in (previous or {}).items() if k != "previous_run"} or None,
    }


def plot(results: list[dict], compare: list[Path], path: Path, what: str = "the ten books") -> None:
    """Each run's train loss against time, in bits per byte, on one set of axes."""
    results = results + [json.loads(other.read_text()) for other in compare if other.exists()]
    curves = {}
    for result in results:
        label = (
            f"{result['parameters'] / 1e6:.1f} M weights, {result['steps']} steps: "
            f"{result['test_bits_per_byte']:.3f} test bpb"
        )
        curves[label] = (result["curve"], result["val_bits_per_byte"] / result["val_loss"])
    title = f"{results[0]['budget_minutes']:g} minutes of training on {what}"
    plot_curves(curves, path, title)


if __name__ == "__main__":
    main()
