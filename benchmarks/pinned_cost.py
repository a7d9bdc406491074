"""What holding the math libraries to one code path costs (aitale/machine.py), on this machine.

Times the train stage's step (forward, backward, AdamW) on the model and batch that ``params.yaml``
gives, and one greedy decoding step, in fresh processes: the pinned path (AVX2 kernels, two threads:
what every stage runs) against the CPU's native one (``AITALE_NATIVE_MATH=1``), each in fp32 and,
where the CPU has native bf16, in bf16 autocast. The variants take turns round by round, so that
other load on the machine falls on all of them alike; medians over the rounds.

    .venv/bin/python -m benchmarks.pinned_cost              # 5 rounds of 12 steps
    .venv/bin/python -m benchmarks.pinned_cost --rounds 3 --steps 6

Results: benchmarks/results/pinned_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "benchmarks/results/pinned_cost.json"


def worker(steps: int, precision: str) -> dict:
    """Runs in the child process: median seconds of a train step and of a decoding step."""
    import torch

    from aitale.modeling.model import gpt2_config
    from aitale.modeling.trainer import make_optimizer
    from aitale.params import ModelParams, TrainParams, load_section

    model_params = load_section(ModelParams, "model")
    hp = load_section(TrainParams, "train").scratch
    torch.manual_seed(0)
    config = gpt2_config(
        vocab_size=model_params.vocab_size, context=model_params.context, n_layer=model_params.n_layer,
        n_head=model_params.n_head, n_embd=model_params.n_embd, dropout=model_params.dropout,
        attn_dropout=model_params.attn_dropout, bos_token_id=0, eos_token_id=0, pad_token_id=1,
    )  # fmt: skip
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(config)
    optimizer, _ = make_optimizer(model, hp.learning_rate, hp.weight_decay, 0, steps + 2)
    batch = torch.randint(0, model_params.vocab_size, (hp.batch_size, min(hp.block_size, model_params.context)))
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    train_seconds = []
    for step in range(steps + 2):  # two warm-up steps
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=precision == "bf16"):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            train_seconds.append(time.perf_counter() - started)
    model.eval()
    decode_seconds = []
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=precision == "bf16"):
        out = model(input_ids=batch[:1, :64], use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        for _ in range(steps * 4):
            started = time.perf_counter()
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            decode_seconds.append(time.perf_counter() - started)
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "train_step_s": statistics.median(train_seconds),
        "decode_step_ms": 1000 * statistics.median(decode_seconds),
        "tokens_per_step": int(batch.numel()),
    }


def run_variant(path: str, precision: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("AITALE_NATIVE_MATH",)}
    if path == "native":
        env["AITALE_NATIVE_MATH"] = "1"
    code = f"import stages, json, benchmarks.pinned_cost as b; print(json.dumps(b.worker({steps}, {precision!r})))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{path} {precision} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs every variant once (default 5)")
    parser.add_argument("--steps", type=int, default=12, help="timed train steps per variant and round (default 12)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from aitale.machine import LoadRange, cpu_flags, describe

    precisions = ["fp32", "bf16"] if {"avx512_bf16", "amx_bf16"} & set(cpu_flags()) else ["fp32"]
    variants = [(path, precision) for precision in precisions for path in ("pinned", "native")]
    load = LoadRange()
    runs: dict[str, list[dict]] = {f"{p}_{q}": [] for p, q in variants}
    for round_ in range(args.rounds):
        for path, precision in variants:
            runs[f"{path}_{precision}"].append(run_variant(path, precision, args.steps))
        load.sample()
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    summary = {
        name: {
            "cpu_capability": rows[0]["cpu_capability"],
            "threads": rows[0]["threads"],
            "train_step_s": round(statistics.median(r["train_step_s"] for r in rows), 4),
            "train_tokens_per_s": round(
                rows[0]["tokens_per_step"] / statistics.median(r["train_step_s"] for r in rows)
            ),
            "decode_step_ms": round(statistics.median(r["decode_step_ms"] for r in rows), 3),
        }
        for name, rows in runs.items()
    }
    ratios = {
        f"pinned_over_native_{q}": {
            "train_step": round(summary[f"pinned_{q}"]["train_step_s"] / summary[f"native_{q}"]["train_step_s"], 3),
            "decode_step": round(
                summary[f"pinned_{q}"]["decode_step_ms"] / summary[f"native_{q}"]["decode_step_ms"], 3
            ),
        }
        for q in precisions
    }
    result = {
        "what": "the train stage's step and a greedy decoding step, pinned (aitale/machine.py) against native kernels",
        "machine": describe(),
        "load_average_1min": load.summary(),
        "rounds": args.rounds,
        "steps": args.steps,
        "variants": summary,
        "ratios": ratios,
        "date": time.strftime("%Y-%m-%d"),
    }
    OUTPUT.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in summary.items():
        print(
            f"{name:>14}: {row['train_tokens_per_s']:>7} train tokens/s, {row['decode_step_ms']:.2f} ms per decode step"
        )
    for name, ratio in ratios.items():
        print(f"{name}: train x{ratio['train_step']}, decode x{ratio['decode_step']} (time, pinned / native)")


if __name__ == "__main__":
    main()
