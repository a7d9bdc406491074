"""From a trained causal LM to deployable files: ONNX with a KV cache, its INT8 copy, TorchScript.

* :func:`export_onnx` traces :class:`~aitale.generation.graph.CachedDecoder` (GPT-2 or
  GPT-Neo) with the TorchScript-based exporter (``dynamo=False``: the dynamo exporter needs
  ``onnxscript``, not a dependency here) into one graph that serves the first step (a past
  of length 0) and every incremental step alike;
* :func:`optimize_onnx` runs onnxruntime's transformer fusions for GPT-2 (LayerNorm +
  residual into SkipLayerNormalization, the tanh GELU into FastGelu; GPT-Neo's blocks have
  the same LayerNorm and GELU);
* a graph whose weights would pass protobuf's 2 GB limit (GPT-2 774M, GPT-Neo 1.3B in fp32)
  is saved with its tensors in one external data file beside it, ``<name>.data``
  (:data:`EXTERNAL_DATA_BYTES`); onnxruntime reads it from the same folder;
* :func:`quantize_onnx` stores every weight matrix and the embedding tables in 8 bits with
  dynamic (per-call) activation scales, as onnxruntime's ``quantize_dynamic``;
* :func:`export_torchscript` saves ``torch.jit.trace`` of the same decoder.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import warnings
import zipfile
from pathlib import Path

import onnx
import torch
from transformers import PreTrainedModel

from aitale.generation.decoders import TORCHSCRIPT_META, input_names, output_names, past_names, present_names
from aitale.generation.graph import CachedDecoder, Seq2SeqCachedDecoder, Seq2SeqEncoder, shape_of

log = logging.getLogger(__name__)

# Weights above this many bytes go to an external data file: protobuf cannot serialise a message of 2 GiB or more,
# and the graph itself needs some room besides its weights.
EXTERNAL_DATA_BYTES = 2**31 - 2**26


def sample_inputs(decoder: CachedDecoder, batch: int = 1, new: int = 2, past: int = 3) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: every dimension that varies at run time differs from the others."""
    generator = torch.Generator().manual_seed(0)
    vocab = decoder.shape.vocab_size
    ids = torch.randint(0, vocab, (batch, new), generator=generator)
    mask = torch.ones(batch, past + new, dtype=torch.long)
    positions = torch.arange(past, past + new).expand(batch, -1)
    cache = [
        torch.randn(batch, decoder.n_head, past, decoder.head_dim, generator=generator)
        for _ in range(2 * decoder.n_layer)
    ]
    return (ids, mask, positions, *cache)


def weight_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def external_data(path: str | Path) -> str:
    """The name of the external data file of the graph at ``path`` (in the same folder)."""
    return Path(path).name + ".data"


def save_model(model_proto: onnx.ModelProto, path: str | Path, external: bool) -> Path:
    """Save a graph; with ``external`` its tensors go to one ``<name>.data`` file beside it."""
    path = Path(path)
    data = path.parent / external_data(path)
    if data.exists():
        data.unlink()  # onnx appends to an existing data file
    if external:
        onnx.save(
            model_proto,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=1024,
        )
    else:
        onnx.save(model_proto, str(path))
    return path


def uses_external_data(path: str | Path) -> bool:
    return (Path(path).parent / external_data(path)).is_file()


def export_onnx(
    model: PreTrainedModel, path: str | Path, opset: int, external_above: int = EXTERNAL_DATA_BYTES
) -> Path:
    """The decoder graph at ``path``; with external data when its weights pass ``external_above`` bytes."""
    decoder = CachedDecoder(model)
    n = decoder.n_layer
    axes = {
        "input_ids": {0: "batch", 1: "new"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "new"},
        "logits": {0: "batch", 1: "new"},
    }
    axes |= {name: {0: "batch", 2: "past"} for name in past_names(n)}
    axes |= {name: {0: "batch", 2: "new"} for name in output_names(n)[1:]}
    external = weight_bytes(decoder) > external_above
    names = (input_names(n), output_names(n))
    return _trace(decoder, sample_inputs(decoder), path, names, axes, opset, metadata(model), external)


def _trace(
    module: torch.nn.Module, inputs: tuple, path: str | Path, names: tuple[list[str], list[str]], axes: dict,
    opset: int, values: dict, external: bool,
) -> Path:  # fmt: skip
    """``module`` traced on ``inputs`` into the graph at ``path`` (``names``: its inputs' and its outputs'),
    ``values`` as its metadata, checked; with external data when ``external``."""
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        # a graph over 2 GB leaves the tracer as many files as tensors: written in a folder of its own
        traced = Path(scratch) / path.name
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints: the shapes are symbolic here
            torch.onnx.export(
                module,
                inputs,
                str(traced),
                input_names=names[0],
                output_names=names[1],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        model_proto = onnx.load(str(traced))
    _set_metadata(model_proto, values)
    save_model(model_proto, path, external)
    onnx.checker.check_model(str(path))  # by path: the checker reads external data itself
    return path


def metadata(model: PreTrainedModel) -> dict[str, int | None]:
    """Shape and special tokens, stored in each exported file for the runtime."""
    shape = shape_of(model.config)
    return {
        "n_layer": shape.n_layer,
        "n_head": shape.n_head,
        "head_dim": shape.head_dim,
        "n_positions": shape.context,
        "vocab_size": shape.vocab_size,
        "eos_token_id": model.config.eos_token_id,
    }


def optimize_onnx(source: str | Path, target: str | Path, n_head: int, n_embd: int) -> Path:
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("gpt2")
    model = optimizer.optimize_model(
        str(source),
        model_type="gpt2",
        num_heads=n_head,
        hidden_size=n_embd,
        optimization_options=options,
        opt_level=0,
        use_gpu=False,
    )
    fused = {op: count for op, count in model.get_fused_operator_statistics().items() if count}
    log.info("onnxruntime fusions: %s", fused)
    model.save_model_to_file(str(target), use_external_data_format=uses_external_data(source))
    return Path(target)


def quantize_onnx(source: str | Path, target: str | Path, external: bool = False) -> Path:
    """Dynamic INT8: signed 8-bit weights, activations quantized per call (no calibration data).

    ``external``: the INT8 graph's tensors in ``<name>.data`` too (it is a quarter of the fp32 size, so
    only a model of 8 GB or more in fp32 needs it)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic warns on the root logger to run its preprocessing
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gather"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
            use_external_data_format=external,
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
        records = {
            info.filename: source.read(info) for info in source.infolist() if not info.filename.endswith(".debug_pkl")
        }
    digest = hashlib.sha256()
    for name, data in records.items():
        if not name.endswith("/.data/serialization_id"):
            digest.update(name.encode() + b"\0" + data)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for name, data in records.items():
            if name.endswith("/.data/serialization_id"):
                data = str(int(digest.hexdigest(), 16) % 10**40).zfill(40).encode()
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def _set_metadata(model_proto: onnx.ModelProto, values: dict) -> None:
    """Key/value metadata of the graph (onnxruntime: ``session.get_modelmeta().custom_metadata_map``)."""
    del model_proto.metadata_props[:]
    for key, value in values.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, str(value)


# --- T5: the encoder graph and the cached decoder graph ------------------------------------------------


def cross_names(n_layer: int) -> list[str]:
    return [f"cross_{kind}_{i}" for i in range(n_layer) for kind in ("key", "value")]


def export_seq2seq(
    model: PreTrainedModel, encoder_path: str | Path, decoder_path: str | Path, opset: int,
    external_above: int = EXTERNAL_DATA_BYTES,
) -> tuple[Path, Path]:  # fmt: skip
    """A T5 as two graphs: ``encoder(input_ids, attention_mask) -> cross_key_<i>, cross_value_<i>`` and
    ``decoder(input_ids, attention_mask, encoder_mask, past_*, cross_*) -> logits, present_*``."""
    encoder, decoder = Seq2SeqEncoder(model), Seq2SeqCachedDecoder(model)
    shape = decoder.shape
    n, generator = shape.n_layer, torch.Generator().manual_seed(0)
    source, past, new = 5, 3, 2
    ids = torch.randint(0, shape.vocab_size, (1, source), generator=generator)
    cache = [torch.randn(1, shape.n_head, past, shape.head_dim, generator=generator) for _ in range(2 * n)]
    cross = [torch.randn(1, shape.n_head, source, shape.head_dim, generator=generator) for _ in range(2 * n)]
    new_ids = torch.randint(0, shape.vocab_size, (1, new), generator=generator)
    values = {
        "decoder_start_token_id": model.config.decoder_start_token_id,
        "eos_token_id": model.config.eos_token_id,
        "vocab_size": shape.vocab_size,
        "n_layer": n,
    }
    crosses = cross_names(n)
    cross_axes = {name: {0: "batch", 2: "source"} for name in crosses}
    encoder_axes = {"input_ids": {0: "batch", 1: "source"}, "attention_mask": {0: "batch", 1: "source"}}
    names = (["input_ids", "attention_mask"], crosses)
    external = weight_bytes(encoder) > external_above
    _trace(
        encoder, (ids, torch.ones_like(ids)), encoder_path, names, encoder_axes | cross_axes, opset, values, external
    )
    inputs = (new_ids, torch.ones(1, past + new, dtype=torch.long), torch.ones(1, 1, source, 1), *cache, *cross)
    names = (["input_ids", "attention_mask", "encoder_mask", *past_names(n), *crosses], present_names(n))
    axes = _seq2seq_decoder_axes(n) | cross_axes
    _trace(decoder, inputs, decoder_path, names, axes, opset, values, weight_bytes(decoder) > external_above)
    return Path(encoder_path), Path(decoder_path)


def _seq2seq_decoder_axes(n_layer: int) -> dict[str, dict[int, str]]:
    """The dimensions of the T5 decoder graph's inputs and outputs that vary at run time (the cross-attention
    keys and values aside)."""
    return (
        {
            "input_ids": {0: "batch", 1: "new"},
            "attention_mask": {0: "batch", 1: "total"},
            "encoder_mask": {0: "batch", 2: "source"},
            "logits": {0: "batch", 1: "new"},
        }
        | {name: {0: "batch", 2: "past"} for name in past_names(n_layer)}
        | {name: {0: "batch", 2: "total"} for name in present_names(n_layer)[1:]}
    )
