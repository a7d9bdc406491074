"""Export stage: the published model as ONNX (with KV cache), INT8 ONNX and TorchScript.

Writes to ``--output-dir``: ``model.onnx`` (fp32, one decoder graph that reads the past
keys/values per layer and returns the new positions' only, fused by onnxruntime's GPT-2
optimizer; the end-of-text id is checked against the vocabulary first), ``model_int8.onnx`` (dynamic
INT8), ``model.pt`` (TorchScript), the tokenizer and generation config, and
``manifest.json`` (size and sha256 of each file, checked on load). GPT-2 and GPT-Neo export
alike; a graph over 2 GB keeps its weights in ``<graph>.data`` beside it. A T5 gets
``encoder.onnx`` and ``model.onnx`` (its decoder with the cache), their INT8 copies
``encoder_int8.onnx`` and ``model_int8.onnx``, and no TorchScript; its metrics hold parity,
greedy agreement and sizes (speed is timed for the decoder-only models).

Fails, writing nothing, if the fp32 ONNX logits differ from PyTorch's by more than
``export.parity_tolerance``. ``--metrics`` gets per variant (PyTorch eager, ONNX fp32, ONNX
INT8, TorchScript): size on disk, bits per byte on the test split, logit parity and
greedy-token agreement with transformers. ``--speed`` gets what differs from run to run:
ms per token at batch 1 with the cache after each of ``export.latency_contexts`` tokens and
tokens/s at batch ``export.throughput_batch``, each the variant's faster of one thread and one
per core, timed interleaved with the other variants (``aitale/export/build.py``).
Exit 2: bad params or inputs; 1: parity.

    python -m stages.export --model models/storyteller --test data/processed/test.jsonl \\
        --output-dir models/onnx --metrics metrics/export.json --speed metrics/speed/export.json
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from aitale import cli
from aitale.errors import ParamsError
from aitale.export.build import ParityError, export_all, measure_all
from aitale.generation.config import default_settings
from aitale.generation.graph import UnsupportedModel
from aitale.io import atomic_dir, read_jsonl, write_json
from aitale.modeling.model import load_trained
from aitale.params import EvaluateParams, ExportParams, load_section

log = logging.getLogger("export")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(ExportParams, "export", args.config, cli.overrides(args))
        evaluate = load_section(EvaluateParams, "evaluate", args.config)
    except ParamsError as err:
        log.error("%s", err)
        return 2
    model_dir, test = Path(args.model), Path(args.test)
    if not (model_dir / "config.json").is_file():
        log.error("%s: not a save_pretrained model folder (no config.json); run the package stage", model_dir)
        return 2
    if not test.is_file():
        log.error("%s: test split not found; run the prepare stage", test)
        return 2
    records = read_jsonl(test)
    if not records:
        log.error("%s: no test stories", test)
        return 2
    texts = [record["structured"] for record in records[: params.max_bpb_stories or None]]

    started = time.perf_counter()
    torch.manual_seed(0)
    model = load_trained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if (problem := special_ids_problem(model.config, len(tokenizer))) is not None:
        log.error("%s: %s; nothing was written", model_dir / "config.json", problem)
        return 2
    try:
        with atomic_dir(args.output_dir) as staging:
            export_all(model, model_dir, staging, params.opset)
            metrics, speed = measure_all(
                model,
                tokenizer,
                staging,
                params,
                default_settings(model_dir),  # the settings the model ships with
                evaluate.sample_prompts,
                evaluate.stride,
                texts,
            )
    except UnsupportedModel as err:
        log.error("%s: %s", model_dir, err)
        return 2
    except ParityError as err:
        log.error("%s; nothing was written to %s", err, args.output_dir)
        return 1
    speed["seconds"] = round(time.perf_counter() - started, 1)
    write_json(args.metrics, {"model": str(model_dir), **metrics})
    write_json(args.speed, speed)
    _report(metrics, speed, model.config.is_encoder_decoder)
    return 0


def _parser():
    parser = cli.stage_parser(__doc__, ExportParams, "export")
    parser.add_argument("--model", required=True, help="a save_pretrained model folder (with tokenizer)")
    parser.add_argument("--test", required=True, help="test split (jsonl) from the prepare stage, for bits per byte")
    parser.add_argument("--output-dir", required=True, help="folder for the exported files")
    parser.add_argument("--metrics", required=True, help="metrics JSON: sizes, bits per byte, parity")
    parser.add_argument("--speed", required=True, help="JSON for this run's latency and throughput figures")
    return parser


def _report(metrics: dict, speed: dict, encoder_decoder: bool) -> None:
    """The INT8 variant against fp32 and PyTorch, and each goal not met, in the log."""
    ratios = metrics["ratios"] | speed["ratios"]
    if encoder_decoder:
        log.info("INT8: %.0f%% of the fp32 size (%.0f s)", 100 * ratios["int8_size_vs_onnx_fp32"], speed["seconds"])
    else:
        log.info(
            "INT8: %.0f%% of the fp32 size, %s x PyTorch's ms/token, %+.2f%% bits per byte (%.0f s)",
            100 * ratios["int8_size_vs_onnx_fp32"],
            ratios["int8_latency_vs_pytorch"],
            100 * ratios["int8_bpb_increase_vs_onnx_fp32"],
            speed["seconds"],
        )
    for name, goal in (metrics["goals"] | speed["goals"]).items():
        if not goal["met"]:
            log.warning("goal not met: %s <= %s (got %s)", name, goal["goal"], ratios[name])


def special_ids_problem(config, tokens: int) -> str | None:
    """What is wrong with the config's end-of-text id, if anything: it must be a token of the tokenizer and of
    the model's output (the decoders hold it back and stop on it)."""
    eos = config.eos_token_id
    for value in eos if isinstance(eos, list) else [eos]:
        if value is not None and not 0 <= value < min(tokens, config.vocab_size):
            return (
                f"eos_token_id {value} lies outside the vocabulary ({tokens} tokens in the tokenizer, "
                f"{config.vocab_size} in the model): set eos_token_id to the tokenizer's end-of-text id"
            )
    return None


if __name__ == "__main__":
    sys.exit(main())
