"""From a trained causal LM to deployable files: ONNX with a KV cache, its INT8 copy, TorchScript.

* :func:`export_onnx` traces :class:`~aitale.export.decoder.CachedDecoder` with the
  TorchScript-based exporter (``dynamo=False``: the dynamo exporter needs ``onnxscript``, not
  a dependency here) into one graph that serves the first step (a past of length 0) and
  every incremental step alike;
* :func:`optimize_onnx` runs onnxruntime's transformer fusions for GPT-2 (LayerNorm +
  residual into SkipLayerNormalization, the tanh GELU into FastGelu);
* :func:`quantize_onnx` stores every weight matrix and the embedding tables in 8 bits with
  dynamic (per-call) activation scales, as onnxruntime's ``quantize_dynamic``;
* :func:`export_torchscript` saves ``torch.jit.trace`` of the same decoder.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
import zipfile
from pathlib import Path

import onnx
import torch
from transformers import PreTrainedModel

from aitale.export.decoder import TORCHSCRIPT_META, CachedDecoder, input_names, output_names, past_names

log = logging.getLogger(__name__)


def sample_inputs(decoder: CachedDecoder, batch: int = 1, new: int = 2, past: int = 3) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: every dimension that varies at run time differs from the others."""
    generator = torch.Generator().manual_seed(0)
    vocab = decoder.head.shape[1]
    ids = torch.randint(0, vocab, (batch, new), generator=generator)
    mask = torch.ones(batch, past + new, dtype=torch.long)
    positions = torch.arange(past, past + new).expand(batch, -1)
    cache = [torch.randn(batch, decoder.n_head, past, decoder.head_dim, generator=generator)
             for _ in range(2 * decoder.n_layer)]
    return (ids, mask, positions, *cache)


def export_onnx(model: PreTrainedModel, path: str | Path, opset: int) -> Path:
    decoder = CachedDecoder(model)
    n = decoder.n_layer
    axes = {"input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "new"}, "logits": {0: "batch", 1: "new"}}
    axes |= {name: {0: "batch", 2: "past"} for name in past_names(n)}
    axes |= {name: {0: "batch", 2: "total"} for name in output_names(n)[1:]}
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints: the shapes are symbolic here
        torch.onnx.export(decoder, sample_inputs(decoder), str(path), input_names=input_names(n),
                          output_names=output_names(n), dynamic_axes=axes, opset_version=opset,
                          dynamo=False, do_constant_folding=True)
    model_proto = onnx.load(str(path))
    onnx.checker.check_model(model_proto)
    _set_metadata(path, model_proto, metadata(model))
    return path


def metadata(model: PreTrainedModel) -> dict[str, int | None]:
    """Shape and special tokens, stored in each exported file for the runtime."""
    config = model.config
    return {"n_layer": config.n_layer, "n_head": config.n_head, "head_dim": config.n_embd // config.n_head,
            "n_positions": config.n_positions, "vocab_size": config.vocab_size,
            "eos_token_id": config.eos_token_id}


def optimize_onnx(source: str | Path, target: str | Path, n_head: int, n_embd: int) -> Path:
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("gpt2")
    model = optimizer.optimize_model(str(source), model_type="gpt2", num_heads=n_head, hidden_size=n_embd,
                                     optimization_options=options, opt_level=0, use_gpu=False)
    fused = {op: count for op, count in model.get_fused_operator_statistics().items() if count}
    log.info("onnxruntime fusions: %s", fused)
    model.save_model_to_file(str(target))
    return Path(target)


def quantize_onnx(source: str | Path, target: str | Path) -> Path:
    """Dynamic INT8: signed 8-bit weights, activations quantized per call (no calibration data)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic warns on the root logger to run its preprocessing
    try:
        quantize_dynamic(
            str(source), str(target), weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gather"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)
    return Path(target)


def export_torchscript(model: PreTrainedModel, path: str | Path) -> Path:
    decoder = CachedDecoder(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(decoder, sample_inputs(decoder), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_META: json.dumps(metadata(model))})
    _write_reproducible_zip(buffer, Path(path))
    return Path(path)


def _write_reproducible_zip(archive: io.BytesIO, path: Path) -> None:
    """Rewrite a TorchScript archive so that the same model gives the same bytes from any folder.

    The ``*.debug_pkl`` records hold source locations (absolute paths of the tracing code) and
    ``.data/serialization_id`` is derived from them; ``torch.jit.load`` needs neither, so the
    records are dropped and the id becomes a digest of what is left.
    """
    with zipfile.ZipFile(archive) as source:
        records = {info.filename: source.read(info) for info in source.infolist()
                   if not info.filename.endswith(".debug_pkl")}
    digest = hashlib.sha256()
    for name, data in records.items():
        if not name.endswith("/.data/serialization_id"):
            digest.update(name.encode() + b"\0" + data)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for name, data in records.items():
            if name.endswith("/.data/serialization_id"):
                data = str(int(digest.hexdigest(), 16) % 10**40).zfill(40).encode()
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def _set_metadata(path: Path, model_proto: onnx.ModelProto, values: dict) -> None:
    """Key/value metadata of the graph (onnxruntime: ``session.get_modelmeta().custom_metadata_map``)."""
    del model_proto.metadata_props[:]
    for key, value in values.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model_proto, str(path))
