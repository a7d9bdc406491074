"""The export stage's work: write every variant, check parity, and measure them all.

Variants: ``pytorch`` (transformers eager fp32 with its DynamicCache: the baseline),
``onnx_fp32``, ``onnx_int8`` and ``torchscript``. Every timed variant runs with one thread
and with one per core, interleaved (see :mod:`aitale.export.measure`), and its figure is
the faster of the two, so that no variant is judged on a thread count that suits it badly
(torch's OpenMP pool in particular stalls when other processes share the cores). Variants
are interleaved step by step with the others at the same thread count.
"""

from __future__ import annotations

import logging
import platform
import shutil
from collections.abc import Sequence
from pathlib import Path

import onnxruntime
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aitale.data.structure import prompt
from aitale.evaluation.perplexity import torch_logits
from aitale.export import convert, measure
from aitale.generation.decoders import ENCODER_FILES, MANIFEST, OnnxDecoder, TorchScriptDecoder
from aitale.generation.graph import shape_of
from aitale.generation.sampling import GenerationSettings
from aitale.io import file_sha256, write_json
from aitale.machine import LoadRange
from aitale.modeling.model import model_context
from aitale.params import ExportParams

log = logging.getLogger("export")

FP32, INT8, TORCHSCRIPT = "model.onnx", "model_int8.onnx", "model.pt"
FILES = {"onnx_fp32": FP32, "onnx_int8": INT8, "torchscript": TORCHSCRIPT}
COPIED = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)
GREEDY_TOKENS = 64  # greedy continuation compared with transformers', per sample prompt
GOALS = {"int8_latency_vs_pytorch": 0.4, "int8_size_vs_onnx_fp32": 0.30, "int8_bpb_increase_vs_onnx_fp32": 0.03}


class ParityError(RuntimeError):
    """The exported graph does not compute what the PyTorch model computes."""


def export_all(
    model: PreTrainedModel,
    model_dir: Path,
    folder: Path,
    opset: int,
    external_above: int = convert.EXTERNAL_DATA_BYTES,
) -> None:
    """model.onnx, model_int8.onnx, model.pt, the tokenizer and configs, and manifest.json.

    A model whose fp32 weights pass ``external_above`` bytes has ``model.onnx.data`` beside ``model.onnx``.
    """
    if model.config.is_encoder_decoder:
        export_seq2seq_all(model, model_dir, folder, opset, external_above)
        return
    shape = shape_of(model.config)
    raw = folder / "raw.onnx"
    log.info("exporting ONNX (opset %d) with the KV cache", opset)
    convert.export_onnx(model, raw, opset, external_above)
    if convert.uses_external_data(raw):
        log.info("weights over %.1f GB: tensors in %s", external_above / 1e9, convert.external_data(folder / FP32))
    convert.optimize_onnx(raw, folder / FP32, shape.n_head, shape.n_embd)
    raw.unlink()
    (folder / convert.external_data(raw)).unlink(missing_ok=True)
    log.info("quantizing to INT8")
    convert.quantize_onnx(folder / FP32, folder / INT8, external=convert.weight_bytes(model) // 4 > external_above)
    log.info("tracing TorchScript")
    convert.export_torchscript(model, folder / TORCHSCRIPT)
    finish(model_dir, folder)


def export_seq2seq_all(model: PreTrainedModel, model_dir: Path, folder: Path, opset: int, external_above: int) -> None:
    """A T5's encoder.onnx and model.onnx (the decoder with its cache), their INT8 copies, the tokenizer and
    configs, and manifest.json. (No TorchScript: the encoder-decoder pair is served through onnxruntime.)"""
    log.info("exporting the T5 encoder and cached decoder (opset %d)", opset)
    convert.export_seq2seq(model, folder / ENCODER_FILES[FP32], folder / FP32, opset, external_above)
    log.info("quantizing both to INT8")
    external = convert.weight_bytes(model) // 4 > external_above
    for graph in (FP32,):
        convert.quantize_onnx(folder / graph, folder / INT8, external=external)
        convert.quantize_onnx(folder / ENCODER_FILES[graph], folder / ENCODER_FILES[INT8], external=external)
    finish(model_dir, folder)


def finish(model_dir: Path, folder: Path) -> None:
    """Copy the tokenizer and configs beside the graphs and write the manifest of every file."""
    for name in COPIED:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, folder / name)
    files = {
        path.name: {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(folder.iterdir())
        if path.is_file()
    }
    write_json(folder / MANIFEST, {"files": files})


def load_decoders(folder: Path, threads: int | None = None) -> dict:
    decoders = {"onnx_fp32": OnnxDecoder(folder / FP32, threads), "onnx_int8": OnnxDecoder(folder / INT8, threads)}
    if (folder / TORCHSCRIPT).is_file():
        decoders["torchscript"] = TorchScriptDecoder(folder / TORCHSCRIPT)
    return decoders


def check_parity(model: PreTrainedModel, decoders: dict, tolerance: float) -> dict[str, dict[str, float]]:
    """Logit differences of every variant; raises :class:`ParityError` if fp32 ONNX exceeds ``tolerance``."""
    compare = measure.seq2seq_parity if model.config.is_encoder_decoder else measure.logit_parity
    parity = {name: compare(model, decoder) for name, decoder in decoders.items()}
    fp32 = parity["onnx_fp32"]
    worst = max(fp32.values())
    if not worst <= tolerance:  # also fails on NaN
        raise ParityError(
            f"parity check failed: ONNX fp32 logits differ from PyTorch's by up to {worst:.3g} "
            f"(no past {fp32['no_past']:.3g}, with past {fp32['with_past']:.3g}), above "
            f"export.parity_tolerance = {tolerance:g}"
        )
    log.info("max |logit diff| vs PyTorch: %s", {name: f"{max(p.values()):.2e}" for name, p in parity.items()})
    return parity


def measure_all(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    params: ExportParams,
    defaults: GenerationSettings,
    titles: Sequence[str],
    stride: int,
    texts: Sequence[str],
) -> tuple[dict, dict]:
    """Check parity, then measure: the results (sizes, bits per byte, parity; the same on every run)
    and the speed figures (latency, throughput: this machine, this run). ``defaults`` are the model's
    generation settings (its generation_config.json), which the greedy parity decodes with."""
    decoders = load_decoders(folder)
    parity = check_parity(model, decoders, params.parity_tolerance)
    if model.config.is_encoder_decoder:
        return measure_seq2seq(model, tokenizer, folder, decoders, parity, defaults, titles)
    context = model_context(model)
    prompts = [tokenizer(prompt(title)).input_ids for title in titles]
    room = max(1, context - max(len(ids) for ids in prompts))
    greedy = defaults.but(do_sample=False, max_new_tokens=GREEDY_TOKENS).within(room)
    agreement = _greedy_agreements(model, decoders, prompts, greedy)
    bpb = _bits_per_byte(model, tokenizer, decoders, texts, context, stride)
    speed = measure_speed(model, folder, params)
    sizes = variant_sizes(model, folder)
    variants = {}
    for name in ("pytorch", *decoders):
        variants[name] = {"file": sizes[name][0], "bytes": sizes[name][1], "bits_per_byte": round(bpb[name], 5)}
        if name in decoders:
            variants[name]["parity"] = {"max_abs_logit_diff": _rounded(parity[name]), "greedy": agreement[name]}
    ratios = {
        "int8_size_vs_onnx_fp32": round(variants["onnx_int8"]["bytes"] / variants["onnx_fp32"]["bytes"], 4),
        "int8_bpb_increase_vs_onnx_fp32": round(bpb["onnx_int8"] / bpb["onnx_fp32"] - 1, 4) + 0.0,  # no -0.0
    }
    results = {
        "variants": variants,
        "ratios": ratios,
        "goals": _goals(ratios),
        "setup": {
            "bpb_stories": len(texts),
            "bpb_stride": stride,
            "parity_tolerance": params.parity_tolerance,
            "greedy_prompts": len(prompts),
            "greedy_new_tokens": greedy.max_new_tokens,
        },
    }
    return results, _speed_ratios(speed)


def _greedy_agreements(model: PreTrainedModel, decoders: dict, prompts: list, greedy: GenerationSettings) -> dict:
    """Per variant, how much of its greedy continuation of each prompt is transformers'."""
    references = measure.greedy_reference(model, prompts, greedy)
    agreement = {
        name: measure.greedy_agreement(decoder, prompts, references, greedy) for name, decoder in decoders.items()
    }
    log.info("greedy tokens equal to transformers': %s", {n: a["token_agreement"] for n, a in agreement.items()})
    return agreement


def _bits_per_byte(model, tokenizer, decoders: dict, texts: Sequence[str], context: int, stride: int) -> dict:
    """Bits per byte of ``texts`` under PyTorch and every variant."""
    encode = lambda text: tokenizer(text).input_ids  # noqa: E731
    bpb = {}
    for name, logits_fn in {"pytorch": torch_logits(model), **{n: d.logits for n, d in decoders.items()}}.items():
        bpb[name] = measure.bits_per_byte(texts, encode, logits_fn, context, stride)
        log.info("bits per byte, %s: %.4f", name, bpb[name])
    return bpb


def _speed_ratios(speed: dict) -> dict:
    """``speed`` with each variant's latency against PyTorch's, the goals those meet and the library versions."""
    latency = {name: v["latency_ms_per_token"] for name, v in speed["variants"].items()}
    speed["ratios"] = {
        f"{variant}_latency_vs_pytorch": {
            c: round(latency[f"onnx_{variant}"][c] / latency["pytorch"][c], 3) for c in latency["pytorch"]
        }
        for variant in ("int8", "fp32")
    }
    speed["setup"]["versions"] = {
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
    speed["goals"] = _goals(speed["ratios"])
    return speed


def _rounded(parity: dict[str, float]) -> dict[str, float]:
    """Logit differences to three significant figures."""
    return {k: float(f"{v:.3g}") for k, v in parity.items()}


def measure_seq2seq(
    model, tokenizer, folder: Path, decoders: dict, parity: dict, defaults: GenerationSettings, titles
) -> tuple[dict, dict]:
    """A T5's results: parity, greedy agreement with transformers and sizes (encoder and decoder together).
    Its speed is not timed: the figures of :func:`measure_speed` are the decoder-only models'."""
    prompts = [tokenizer(prompt(title), add_special_tokens=False).input_ids for title in titles]
    greedy = defaults.but(do_sample=False, max_new_tokens=GREEDY_TOKENS, min_new_tokens=0)
    references = measure.greedy_reference(model, prompts, greedy)
    variants = {}
    for name, decoder in decoders.items():
        graph = FILES[name]
        files = [_file_size(folder, graph), _file_size(folder, ENCODER_FILES[graph])]
        variants[name] = {
            "file": ", ".join(f for f, _ in files),
            "bytes": sum(b for _, b in files),
            "parity": {
                "max_abs_logit_diff": _rounded(parity[name]),
                "greedy": measure.greedy_agreement(decoder, prompts, references, greedy),
            },
        }
    log.info("greedy tokens equal to transformers': %s", {n: v["parity"]["greedy"] for n, v in variants.items()})
    ratios = {"int8_size_vs_onnx_fp32": round(variants["onnx_int8"]["bytes"] / variants["onnx_fp32"]["bytes"], 4)}
    results = {
        "variants": variants,
        "ratios": ratios,
        "goals": _goals(ratios),
        "setup": {"kind": "seq2seq", "greedy_prompts": len(prompts), "greedy_new_tokens": GREEDY_TOKENS},
    }
    speed = {"variants": {}, "ratios": {}, "goals": {}, "setup": {"timed": "decoder-only models only"}}
    return results, speed


def _goals(ratios: dict) -> dict:
    """Each goal of :data:`GOALS` found in ``ratios``: met when every value (every context) is within it."""
    return {
        name: {
            "goal": GOALS[name],
            "met": all(value <= GOALS[name] for value in (ratio.values() if isinstance(ratio, dict) else [ratio])),
        }
        for name, ratio in ratios.items()
        if name in GOALS
    }


def measure_speed(model: PreTrainedModel, folder: Path, params: ExportParams) -> dict:
    """ms/token at batch 1 after each latency context, tokens/s at the throughput batch."""
    runners = {
        threads: {
            "pytorch": measure.TorchRunner(model, threads),
            **{
                name: measure.DecoderRunner(decoder, threads)
                for name, decoder in load_decoders(folder, threads).items()
            },
        }
        for threads in measure.thread_counts()
    }
    context, vocab, steps = model_context(model), model.config.vocab_size, params.latency_tokens
    figures: dict[str, dict] = {name: {"latency_ms_per_token": {}, "threads": {}} for name in runners[1]}
    measure.warm_up(runners, context, vocab)
    prefills = {}
    load = LoadRange()
    for wanted in params.latency_contexts:
        prefill = measure.usable_prefill(wanted, context, steps)
        prefills[str(wanted)] = prefill
        timing = measure.time_by_threads(runners, prefill, steps, 1, vocab)
        for name in figures:
            ms, threads = timing.best(name)
            figures[name]["latency_ms_per_token"][str(wanted)] = round(ms, 3)
            figures[name]["threads"][f"latency_{wanted}"] = threads
        log.info(
            "ms/token with %d tokens cached: %s",
            prefill,
            {n: figures[n]["latency_ms_per_token"][str(wanted)] for n in figures},
        )
        load.sample()
    batch = params.throughput_batch
    prefill = measure.usable_prefill(min(params.latency_contexts), context, steps)
    timing = measure.time_by_threads(runners, prefill, steps, batch, vocab)
    for name in figures:
        ms, threads = timing.best(name)
        figures[name]["throughput_tokens_per_s"] = round(batch * 1000 / ms, 1)
        figures[name]["threads"]["throughput"] = threads
    log.info("tokens/s at batch %d: %s", batch, {n: figures[n]["throughput_tokens_per_s"] for n in figures})
    load.sample()
    return {
        "variants": figures,
        "setup": {
            "latency_prefill_tokens": prefills,
            "latency_tokens": steps,
            "throughput_batch": batch,
            "throughput_prefill_tokens": prefill,
            "thread_counts": measure.thread_counts(),
            "load_average_1min": load.summary(),
        },
    }


def variant_sizes(model: PreTrainedModel, folder: Path) -> dict[str, tuple[str, int]]:
    source = Path(model.name_or_path)
    weights = sorted(source.glob("*.safetensors")) or sorted(source.glob("*.bin"))
    return {
        "pytorch": (", ".join(p.name for p in weights), sum(p.stat().st_size for p in weights)),
        **{name: _file_size(folder, file) for name, file in FILES.items()},
    }


def _file_size(folder: Path, name: str) -> tuple[str, int]:
    """A graph's file name and bytes, its external data file included when it has one."""
    data = folder / convert.external_data(name)
    if data.is_file():
        return f"{name}, {data.name}", (folder / name).stat().st_size + data.stat().st_size
    return name, (folder / name).stat().st_size
