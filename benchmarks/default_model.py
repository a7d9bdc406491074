"""The embedded default's choices, measured: which model gives the lowest hold-out bits per byte.

Prepares the 64 custom stories once with the repository's params (books: [], so the hold-out is
``prepare.split.holdout_custom`` of the custom tales), then trains each variant below with
``stages.tokenizer`` and ``stages.train`` in a temporary folder and scores its weights on the val,
test and hold-out stories with evaluate's sliding window (``evaluate.stride``). Each variant records
its wall and CPU seconds, so variants are compared at about the same cost.

    .venv/bin/python -m benchmarks.default_model                    # every variant
    .venv/bin/python -m benchmarks.default_model --variants default,vocab2k

Results: benchmarks/results/default_model.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from aitale.evaluation.perplexity import score_texts, torch_logits
from aitale.io import read_jsonl
from aitale.machine import describe
from aitale.params import set_dotted
from benchmarks.common import safety_args

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "benchmarks" / "results" / "default_model.json"

# name: (what, dotted params changes)
VARIANTS = {
    "default": ("params.yaml as it is", {}),
    "vocab2k": ("a 2,048-token vocabulary (a cheaper head; fewer rare tokens to learn)", {"model.vocab_size": 2048}),
    "dropout0.2": (
        "more regularisation: dropout 0.2, weight decay 0.2",
        {"model.dropout": 0.2, "train.scratch.weight_decay": 0.2},
    ),
    "small_longer": (
        "a smaller model, two blocks, trained twice the epochs (about the same compute)",
        {"model.n_layer": 2, "train.scratch.epochs": 8},
    ),
    "longer_early_stop": (
        "the default model for up to twice the epochs, stopped when val loss stops improving (patience 2)",
        {"train.scratch.epochs": 8, "train.patience": 2, "train.eval_every": 10},
    ),
}


def run(module: str, config: Path, *args: Path | str) -> dict:
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", f"stages.{module}", "--config", str(config), *map(str, args)],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(cpu, 1)}


def score(model_dir: Path, records: list[dict], stride: int) -> float | None:
    if not records:
        return None
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total = score_texts(
        [r["structured"] for r in records],
        lambda text: tokenizer(text).input_ids,
        torch_logits(model),
        model.config.n_positions,
        stride,
    )
    return round(total.bits_per_byte, 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    stride = base["evaluate"]["stride"]
    results, load_before = {}, os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="default-model-") as tmp:
        work = Path(tmp)
        config = work / "params.yaml"
        config.write_text(yaml.safe_dump(base, sort_keys=False))
        run("download", config, "--output-dir", work / "raw")
        run("safety", config, *safety_args(work / "safety", work / "safety.json", work / "safety_plots"))
        run("prepare", config, "--stories", REPO / "data/stories", "--books", work / "raw", "--screen",
            work / "safety", "--output-dir", work / "data", "--metrics", work / "data.json")  # fmt: skip
        splits = {name: read_jsonl(work / "data" / f"{name}.jsonl") for name in ("val", "test", "holdout")}
        for name in names:
            what, changes = VARIANTS[name]
            params = base
            for dotted, value in changes.items():
                params = set_dotted(params, dotted, value)
            out = work / name
            out.mkdir()
            variant_config = out / "params.yaml"
            variant_config.write_text(yaml.safe_dump(params, sort_keys=False))
            cost = {"tokenizer": run("tokenizer", variant_config, "--train", work / "data/train.jsonl",
                                     "--output-dir", out / "tokenizer")}  # fmt: skip
            cost["train"] = run(
                "train", variant_config, "--tokenizer", out / "tokenizer", "--train", work / "data/train.jsonl",
                "--val", work / "data/val.jsonl", "--output-dir", out / "model", "--checkpoints", out / "ckpt",
                "--live", out / "live", "--speed", out / "speed", "--metrics", out / "train.json",
            )  # fmt: skip
            train = json.loads((out / "train.json").read_text())
            results[name] = {
                "what": what,
                "changes": changes,
                **{
                    f"{split}_bits_per_byte": score(out / "model", records, stride) for split, records in splits.items()
                },
                "steps": train["steps"],
                "best_step": train["best_step"],
                "stopped_early": train["stopped_early"],
                "parameters": train["parameters"],
                "cost": cost,
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
            print(name, json.dumps(results[name]), flush=True)
    report = {
        "benchmark": "benchmarks.default_model",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**describe(), "load_average_before": [round(x, 2) for x in load_before]},
        "stories": {name: len(records) for name, records in splits.items()},
        "torch_threads": torch.get_num_threads(),
        "variants": results,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
