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

from aitale.modeling.tracking import loss_curve
from aitale.params import set_dotted
from benchmarks.books_sweep import plot_curves

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
    args = parser.parse_args()
    if args.replot:
        plot([json.loads(args.output.read_text())], args.compare, args.output.with_suffix(".png"))
        return
    load_before = os.getloadavg()

    work = args.work or Path(tempfile.mkdtemp(prefix="cpu-budget-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"working in {work}", flush=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["gutenberg"].update(books=BOOKS, mirror=args.mirror)
    params["model"]["vocab_size"] = args.vocab_size
    settings = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.settings)}
    for key, value in settings.items():
        params = set_dotted(params, key, value)
    config = work / "params.yaml"

    def write(max_steps: int, epochs: int, eval_every: int = 25) -> None:
        params["train"]["scratch"].update(max_steps=max_steps, epochs=epochs)
        params["train"].update(
            patience=0, eval_every=eval_every, checkpoint_every=eval_every, sample_every=max(eval_every, max_steps)
        )
        config.write_text(yaml.safe_dump(params, sort_keys=False))

    write(0, 1)
    timings = {
        "safety": stage(
            "safety",
            config,
            "--passages",
            str(REPO / "data/safety/passages.jsonl"),
            "--rules",
            str(REPO / "data/safety/rules.yaml"),
            "--output-dir",
            str(work / "safety"),
            "--metrics",
            str(work / "safety.json"),
        ),
        "download": stage("download", config, "--output-dir", str(work / "raw")),
        "prepare": stage(
            "prepare",
            config,
            "--stories",
            str(REPO / "data/stories"),
            "--books",
            str(work / "raw"),
            "--screen",
            str(work / "safety"),
            "--output-dir",
            str(work / "processed"),
            "--metrics",
            str(work / "data.json"),
        ),
        "tokenizer": stage(
            "tokenizer", config, "--train", str(work / "processed/train.jsonl"), "--output-dir", str(work / "tokenizer")
        ),
    }
    train_args = [
        "--tokenizer",
        str(work / "tokenizer"),
        "--train",
        str(work / "processed/train.jsonl"),
        "--val",
        str(work / "processed/val.jsonl"),
    ]

    # The step time comes from the probe's own tokens/s curve, so start-up and saving don't skew it;
    # ten validation passes are budgeted on top (about 3% of 30 minutes).
    write(30, 100, eval_every=1000)
    stage(
        "train",
        config,
        *train_args,
        "--output-dir",
        str(work / "probe"),
        "--checkpoints",
        str(work / "probe-ckpt"),
        "--live",
        str(work / "probe-live"),
        "--speed",
        str(work / "probe-speed"),
        "--metrics",
        str(work / "probe.json"),
    )
    rates = (work / "probe-speed/plots/metrics/tokens_per_second.tsv").read_text().split()[3::2]
    tokens_per_step = params["train"]["scratch"]["batch_size"] * params["train"]["scratch"]["block_size"]
    per_step = tokens_per_step / statistics.median(float(rate) for rate in rates[5:])
    steps = max(30, int(args.minutes * 60 * 0.97 / per_step))
    write(steps, 1000, eval_every=max(1, steps // 10))
    timings["train"] = stage(
        "train",
        config,
        *train_args,
        "--output-dir",
        str(work / "model"),
        "--checkpoints",
        str(work / "ckpt"),
        "--live",
        str(work / "live"),
        "--speed",
        str(work / "speed"),
        "--metrics",
        str(work / "train.json"),
    )
    timings["evaluate"] = stage(
        "evaluate",
        config,
        "--model-path",
        str(work / "model"),
        "--test-dataset",
        str(work / "processed/test.jsonl"),
        "--holdout",
        str(work / "processed/holdout.jsonl"),
        "--screen",
        str(work / "safety"),
        "--labelled",
        str(REPO / "data/safety/passages.jsonl"),
        "--output-dir",
        str(work / "eval"),
    )
    evaluation = json.loads((work / "eval/eval.json").read_text())
    train = json.loads((work / "train.json").read_text())
    data = json.loads((work / "data.json").read_text())
    curve = loss_curve(
        (work / "live/plots/metrics/train/loss.tsv").read_text(),
        (work / "speed/plots/metrics/elapsed_seconds.tsv").read_text(),
    )
    out = args.output
    previous = json.loads(out.read_text()) if out.exists() else None
    result = {
        "budget_minutes": args.minutes,
        "settings": settings,
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
        "holdout_stories": (evaluation.get("holdout") or {}).get("stories"),
        "dataset_words": data["words"],
        "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
        "reference_points": {"compression_bpb": 2.1, "gpt2_124m_bpb": "1.0-1.1"},
        # [seconds of training, train loss in nats/token] at each step: the loss-against-time curve
        "curve": curve,
        "previous_run": {k: v for k, v in (previous or {}).items() if k != "previous_run"} or None,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot([result], args.compare, out.with_suffix(".png"))
    print(json.dumps(result, indent=2))


def plot(results: list[dict], compare: list[Path], path: Path) -> None:
    """Each run's train loss against time, in bits per byte, on one set of axes."""
    results = results + [json.loads(other.read_text()) for other in compare if other.exists()]
    curves = {}
    for result in results:
        label = (
            f"{result['parameters'] / 1e6:.1f} M weights, {result['steps']} steps: "
            f"{result['test_bits_per_byte']:.3f} test bpb"
        )
        curves[label] = (result["curve"], result["val_bits_per_byte"] / result["val_loss"])
    title = f"{results[0]['budget_minutes']:g} minutes of training on the ten books"
    plot_curves(curves, path, title)


if __name__ == "__main__":
    main()
