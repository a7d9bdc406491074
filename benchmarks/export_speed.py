"""Export speed: per-token latency of INT8 ONNX against PyTorch eager fp32, both with the KV cache.

Two models, each exported as the export stage does it (``aitale.export.convert``: ONNX with
past/present key/values, onnxruntime's GPT-2 fusions, dynamic INT8):

* ``default``: the published model (``--model``, default models/storyteller); without
  one, the ``model`` section of params.yaml built with random weights;
* ``gpt2-124m``: ``GPT2Config()`` (12 layers, 768 wide, 50,257 tokens, 1,024 positions)
  with random weights (seeded): the shape of the spec's pretrained base.

Each variant (``pytorch`` = transformers eager fp32 with its DynamicCache, ``onnx_fp32``,
``onnx_int8``, and ``onnx_int8_io_binding``: the same INT8 graph with the cache bound as
OrtValues through IO binding instead of ``session.run``, to show what that would change)
is timed with one thread and with one per core; the variants at one thread count are
interleaved step by step (``aitale.export.measure``), so load from other processes falls
on all alike. A variant's figure is the median ms/token at its faster thread count, over
``--repeats`` rounds (each from a fresh prefill, thread counts taking turns) pooled;
``int8_latency_vs_pytorch_same_threads`` gives the ratio at each count too.

Goals (the spec's model optimisation): INT8 ms/token <= 0.4 x PyTorch's at every context;
INT8 file <= 30% of fp32.

    .venv/bin/python -m benchmarks.export_speed            # both models (~3-5 min on 2 cores)
    .venv/bin/python -m benchmarks.export_speed --models default

Results: benchmarks/results/export_speed.json, and a table on stdout.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import transformers
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from aitale.export import convert, measure
from aitale.generation.decoders import OnnxDecoder
from aitale.io import write_json
from aitale.machine import LoadRange, describe
from aitale.modeling.model import model_context
from aitale.params import ExportParams, ModelParams, load_section

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "export_speed.json"
GOAL_LATENCY_RATIO = 0.4
GOAL_SIZE_RATIO = 0.30
MODELS = ("default", "gpt2-124m")

log = logging.getLogger("export_speed")


def build(name: str, model_path: Path, config_path: Path) -> tuple[PreTrainedModel, str]:
    torch.manual_seed(0)
    if name == "gpt2-124m":
        return GPT2LMHeadModel(GPT2Config()).eval(), "GPT2Config() defaults, random weights (seed 0)"
    if (model_path / "config.json").is_file():
        return AutoModelForCausalLM.from_pretrained(model_path).eval(), f"trained weights from {model_path}"
    params = load_section(ModelParams, "model", config_path)
    config = GPT2Config(
        vocab_size=params.vocab_size,
        n_positions=params.context,
        n_layer=params.n_layer,
        n_head=params.n_head,
        n_embd=params.n_embd,
    )
    return GPT2LMHeadModel(config).eval(), f"params.yaml model section, random weights (no {model_path})"


def bench_model(
    name: str, model: PreTrainedModel, source: str, params: ExportParams, repeats: int, workdir: Path
) -> dict:
    config = model.config
    folder = workdir / name
    folder.mkdir()
    began = time.perf_counter()
    convert.export_onnx(model, folder / "raw.onnx", params.opset)
    convert.optimize_onnx(folder / "raw.onnx", folder / "model.onnx", config.n_head, config.n_embd)
    (folder / "raw.onnx").unlink()
    convert.quantize_onnx(folder / "model.onnx", folder / "model_int8.onnx")
    export_seconds = time.perf_counter() - began
    sizes = {
        "onnx_fp32": (folder / "model.onnx").stat().st_size,
        "onnx_int8": (folder / "model_int8.onnx").stat().st_size,
        "pytorch": sum(p.numel() * p.element_size() for p in model.parameters()),
    }
    log.info(
        "%s: %.1fM parameters, exported in %.0f s; INT8 file %.1f%% of fp32",
        name,
        sum(p.numel() for p in model.parameters()) / 1e6,
        export_seconds,
        100 * sizes["onnx_int8"] / sizes["onnx_fp32"],
    )

    runners = {}
    for threads in measure.thread_counts():
        fp32, int8 = OnnxDecoder(folder / "model.onnx", threads), OnnxDecoder(folder / "model_int8.onnx", threads)
        bound = OnnxDecoder(folder / "model_int8.onnx", threads, io_binding=True)
        runners[threads] = {
            "pytorch": measure.TorchRunner(model, threads),
            "onnx_fp32": measure.DecoderRunner(fp32, threads),
            "onnx_int8": measure.DecoderRunner(int8, threads),
            "onnx_int8_io_binding": measure.DecoderRunner(bound, threads),
        }
    int8 = OnnxDecoder(folder / "model_int8.onnx")
    parity = measure.logit_parity(model, int8)

    context, vocab, steps = model_context(model), config.vocab_size, params.latency_tokens
    measure.warm_up(runners, context, vocab)
    load = LoadRange()
    latency: dict[str, dict] = {}
    prefills = {}
    for wanted in params.latency_contexts:
        prefill = measure.usable_prefill(wanted, context, steps)
        prefills[str(wanted)] = prefill
        timing = measure.time_by_threads(runners, prefill, steps, 1, vocab, repeats)
        latency[str(wanted)] = figures(timing)
        load.sample()
        log.info(
            "%s, %d tokens cached: %s", name, prefill, {v: f["ms"] for v, f in latency[str(wanted)]["best"].items()}
        )
    batch = params.throughput_batch
    prefill = measure.usable_prefill(min(params.latency_contexts), context, steps)
    throughput = figures(measure.time_by_threads(runners, prefill, steps, batch, vocab, repeats))
    load.sample()

    ratios = {c: round(f["best"]["onnx_int8"]["ms"] / f["best"]["pytorch"]["ms"], 3) for c, f in latency.items()}
    same_threads = {
        c: {
            str(t): round(f["by_threads"]["onnx_int8"][str(t)] / f["by_threads"]["pytorch"][str(t)], 3)
            for t in measure.thread_counts()
        }
        for c, f in latency.items()
    }
    return {
        "source": source,
        "shape": shape(model),
        "bytes": sizes,
        "latency_ms_per_token": latency,
        "latency_prefill_tokens": prefills,
        "throughput_tokens_per_s": {v: round(batch * 1000 / f["ms"], 1) for v, f in throughput["best"].items()},
        "int8_max_abs_logit_diff": {k: float(f"{v:.3g}") for k, v in parity.items()},
        "ratios": {
            "int8_latency_vs_pytorch": ratios,
            "int8_latency_vs_pytorch_same_threads": same_threads,
            "fp32_latency_vs_pytorch": {
                c: round(f["best"]["onnx_fp32"]["ms"] / f["best"]["pytorch"]["ms"], 3) for c, f in latency.items()
            },
            "int8_size_vs_onnx_fp32": round(sizes["onnx_int8"] / sizes["onnx_fp32"], 4),
        },
        "goals": {
            "int8_latency_at_most_0.4x_pytorch": all(r <= GOAL_LATENCY_RATIO for r in ratios.values()),
            "int8_size_at_most_30pct_fp32": sizes["onnx_int8"] / sizes["onnx_fp32"] <= GOAL_SIZE_RATIO,
        },
        "load_average_1min": load.summary(),
        "export_seconds": round(export_seconds, 1),
    }


def figures(timing: measure.Timing) -> dict:
    variants = timing.variants()
    best = {}
    for variant in variants:
        ms, threads = timing.best(variant)
        best[variant] = {"ms": round(ms, 3), "threads": threads}
    by_threads = {
        variant: {
            name.rsplit("@", 1)[1]: round(timing.ms_per_step(name), 3)
            for name in timing.step_seconds
            if name.rsplit("@", 1)[0] == variant
        }
        for variant in variants
    }
    spread = {name: round(statistics.pstdev(v) * 1000, 3) for name, v in timing.step_seconds.items()}
    return {"best": best, "by_threads": by_threads, "stdev_ms": spread}


def shape(model: PreTrainedModel) -> dict:
    config = model.config
    return {
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "n_positions": config.n_positions,
        "vocab_size": config.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def heading(name: str, result: dict) -> str:
    """The table's line above a model's figures: its size and how busy the machine was."""
    load = result["load_average_1min"]
    size = result["shape"]["parameters"] / 1e6
    return f"\n{name} ({size:.1f}M parameters; 1-min load {load['min']:.1f}-{load['max']:.1f})"


def machine_info() -> dict:
    return {
        **describe(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "thread_counts": measure.thread_counts(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument(
        "--model",
        type=Path,
        default=REPO / "models" / "storyteller",
        help="the default model's folder (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timings pooled per figure (default: 3)")
    parser.add_argument("--config", type=Path, default=REPO / "params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in (
        "onnxruntime",
        "fusion_base",
        "fusion_utils",
        "onnx_model",
        "onnx_model_bert",
        "onnx_model_gpt2",
        "aitale",
        "transformers",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if unknown := [n for n in names if n not in MODELS]:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    params = load_section(ExportParams, "export", args.config)

    began = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="export-speed-") as tmp:
        for name in names:
            model, source = build(name, args.model, args.config)
            results[name] = bench_model(name, model, source, params, args.repeats, Path(tmp))
            del model
    report = {
        "models": results,
        "params": params.model_dump(),
        "repeats": args.repeats,
        "machine": machine_info(),
        "seconds": round(time.perf_counter() - began, 1),
    }
    write_json(args.output, report)
    print_table(report)
    return 0


def print_table(report: dict) -> None:
    print(
        f"\n{report['machine']['cpu_model']}, {report['machine']['logical_cpus']} CPUs; "
        f"threads tried {report['machine']['thread_counts']}"
    )
    for name, result in report["models"].items():
        size = result["bytes"]
        print(heading(name, result))
        print(
            f"  size: fp32 {size['onnx_fp32'] / 1e6:.1f} MB, INT8 {size['onnx_int8'] / 1e6:.1f} MB "
            f"({100 * result['ratios']['int8_size_vs_onnx_fp32']:.1f}%)"
        )
        for context, figures_ in result["latency_ms_per_token"].items():
            best = figures_["best"]
            cells = ", ".join(f"{v} {f['ms']:.2f} ms ({f['threads']}t)" for v, f in best.items())
            print(
                f"  context {context}: {cells}; INT8/PyTorch {result['ratios']['int8_latency_vs_pytorch'][context]:.3f}"
            )
        print(f"  goals: {result['goals']}")


if __name__ == "__main__":
    raise SystemExit(main())
