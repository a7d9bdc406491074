"""Decoders: one ``step`` over PyTorch, TorchScript and onnxruntime, with the key/value cache as arrays.

Every decoder takes new ids (batch, new), the attention mask over past and new positions,
their position ids and the cache from the previous step, and returns the logits of the new
positions and the grown cache. The cache is a list of numpy arrays of shape
(batch, heads, positions, head_dim), two per layer, whatever runs underneath.

A decoder-only graph (GPT-2, GPT-Neo; :mod:`aitale.generation.graph`) returns only the new
positions' keys and values: :meth:`OnnxDecoder.step_new` gives them as they are, for the batch
loop (:mod:`aitale.generation.batch`), which keeps every row's past in a preallocated buffer and
writes them in place; ``step`` appends them to the cache it was given, for everyone else.

A sequence-to-sequence model (T5) is a decoder too: its first step from an empty cache takes
the request as ``input_ids``, encodes it, and writes the first token after the decoder's start
token; its cache is then the decoder's keys and values, followed by the encoder side (every
layer's cross-attention keys and values and the request's mask, as (batch, 1, source, 1)), which
:class:`CacheLayout` tells the batch loop to pad per row rather than with the decoder's positions.

Only :class:`OnnxDecoder` is usable without torch (the server's case); the others import it
when built.

    decoder = load_decoder("models/onnx", "onnx-int8")
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from aitale.io import file_sha256
from aitale.machine import decode_threads

MANIFEST = "manifest.json"  # written by the export stage beside its files: size and sha256 of each
RERUN = "re-run the export stage (python -m stages.export, or `dvc repro export`)"
TORCHSCRIPT_META = "aitale.json"  # extra file in the TorchScript archive: shape and special tokens
# The exported files of a folder written by the export stage, by variant name.
VARIANT_FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx", "torchscript": "model.pt"}
VARIANTS = ("pytorch", *VARIANT_FILES)

Cache = list[np.ndarray]
ENCODER_FILES = {"model.onnx": "encoder.onnx", "model_int8.onnx": "encoder_int8.onnx"}  # sequence-to-sequence


class CacheLayout:
    """How a decoder's cache lines up: the first ``positional`` entries hold one column per decoder position
    (padded and trimmed with the batch's attention mask); the rest, a sequence-to-sequence model's encoder side,
    one column per request token (padded per row with zeros, which its mask entry reads as padding)."""

    def __init__(self, positional: int | None = None):
        self.positional = positional

    def split(self, cache: Cache) -> tuple[Cache, Cache]:
        n = len(cache) if self.positional is None else self.positional
        return cache[:n], cache[n:]


DECODER_ONLY = CacheLayout()


# onnxruntime's intra-op threads spin between runs by default: on a machine whose cores other processes
# share, a spinning thread takes the core the next step (or the Python around it) needs.
# benchmarks/serve_load.py measures both (spin_ab).
ALLOW_SPINNING = "0"


class ModelFileError(RuntimeError):
    """A model file is missing, corrupted or truncated."""


class Decoder(Protocol):
    context: int | None  # positions the model has (None: unbounded)
    eos_token_id: int | None
    layout: CacheLayout

    def empty_cache(self, batch: int) -> Cache: ...

    def step(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray, cache: Cache
    ) -> tuple[np.ndarray, Cache]: ...


def full_inputs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids, an all-ones mask and positions 0..n-1, for a step from an empty cache."""
    batch, length = ids.shape
    positions = np.repeat(np.arange(length, dtype=np.int64)[None], batch, axis=0)
    return ids.astype(np.int64), np.ones((batch, length), dtype=np.int64), positions


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def load_decoder(model: str | Path, variant: str = "pytorch", threads: int | None = None) -> Decoder:
    """The decoder of a packaged model folder (``pytorch``) or of an export folder (the other variants)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    folder = Path(model)
    if variant == "pytorch":
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        if not (folder / "config.json").is_file():
            raise ModelFileError(f"{folder}: not a model folder (no config.json); run `dvc repro package`")
        if json.loads((folder / "config.json").read_text(encoding="utf-8")).get("is_encoder_decoder"):
            return TorchSeq2SeqDecoder(AutoModelForSeq2SeqLM.from_pretrained(folder).eval())
        return TorchDecoder(AutoModelForCausalLM.from_pretrained(folder).eval())
    path = folder / VARIANT_FILES[variant]
    return TorchScriptDecoder(path) if variant == "torchscript" else OnnxDecoder(path, threads)


def weights_sha256(folder: str | Path, variant: str) -> str:
    """The sha256 of the weights a variant runs: as the export manifest records it, else hashed."""
    folder = Path(folder)
    if variant == "pytorch":
        return file_sha256(folder / "model.safetensors")
    manifest = folder / MANIFEST
    if manifest.is_file():
        return json.loads(manifest.read_text(encoding="utf-8"))["files"][VARIANT_FILES[variant]]["sha256"]
    return file_sha256(folder / VARIANT_FILES[variant])


def check_manifest(path: Path) -> None:
    """Compare ``path`` with the size and sha256 the export stage recorded, if it recorded them."""
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        return
    entry = json.loads(manifest.read_text(encoding="utf-8")).get("files", {}).get(path.name)
    if entry is None:
        return
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise ModelFileError(
            f"{path}: {size} bytes, but the export wrote {entry['bytes']}: the file is truncated or corrupted; {RERUN}"
        )
    if file_sha256(path) != entry["sha256"]:
        raise ModelFileError(
            f"{path}: its checksum differs from the one the export recorded: the file is corrupted; {RERUN}"
        )


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = (
        "Fail",
        "InvalidArgument",
        "NoSuchFile",
        "NoModel",
        "InvalidProtobuf",
        "InvalidGraph",
        "RuntimeException",
        "NotImplemented",
        "ModelLoaded",
        "EPFail",
    )
    return tuple(getattr(state, name) for name in names if hasattr(state, name)) + (RuntimeError,)


def load_session(
    path: str | Path, threads: int | None = None, verify: bool = True, spinning: str | None = None
) -> ort.InferenceSession:
    """An onnxruntime CPU session, or a :class:`ModelFileError` that names the file and the fix.

    ``spinning``: "1" or "0", whether idle compute threads spin (default :data:`ALLOW_SPINNING`)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; {RERUN}")
    if verify:
        check_manifest(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning or ALLOW_SPINNING)
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except _ort_errors() as err:
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ModelFileError(
            f"{path}: onnxruntime cannot load this model, the file is corrupted or truncated ({reason}); {RERUN}"
        ) from None


def input_names(n_layer: int) -> list[str]:
    return ["input_ids", "attention_mask", "position_ids", *past_names(n_layer)]


def past_names(n_layer: int) -> list[str]:
    return [f"past_{kind}_{i}" for i in range(n_layer) for kind in ("key", "value")]


def output_names(n_layer: int) -> list[str]:
    """A decoder-only graph's outputs: the logits and the new positions' keys and values."""
    return ["logits", *(name.replace("past_", "new_") for name in past_names(n_layer))]


def present_names(n_layer: int) -> list[str]:
    """A sequence-to-sequence decoder graph's outputs: the logits and its whole self-attention cache."""
    return ["logits", *(name.replace("past_", "present_") for name in past_names(n_layer))]


def grown(cache: Cache, new: Cache) -> Cache:
    """The cache after a step: each entry with the new positions appended."""
    return [np.concatenate([old, added], axis=2) for old, added in zip(cache, new)]


class OnnxDecoder:
    """An exported decoder graph on onnxruntime (CPU).

    The cache travels as numpy arrays through ``session.run``, which wraps inputs and
    outputs without copying them. ``io_binding=True`` binds it as ``OrtValue``\\s instead;
    ``benchmarks/export_speed.py`` times both: the binding calls cost more than they save.
    """

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        verify: bool = True,
        io_binding: bool = False,
        spinning: str | None = None,
    ):
        self.path = Path(path)
        self.session = load_session(self.path, threads, verify, spinning)
        self.io_binding = io_binding
        inputs = {node.name: node for node in self.session.get_inputs()}
        if "past_key_0" not in inputs:
            raise ModelFileError(
                f"{self.path}: not a decoder written by the export stage (no past_key_0 input); {RERUN}"
            )
        self.n_layer = sum(name.startswith("past_key_") for name in inputs)
        _, self.n_head, _, self.head_dim = inputs["past_key_0"].shape
        meta = self.session.get_modelmeta().custom_metadata_map
        self.context = int(meta["n_positions"]) if "n_positions" in meta else None
        self.eos_token_id = int(meta["eos_token_id"]) if meta.get("eos_token_id", "None") != "None" else None
        self.past_names = past_names(self.n_layer)
        self.seq2seq = "encoder_mask" in inputs
        self.output_names = (present_names if self.seq2seq else output_names)(self.n_layer)
        if [o.name for o in self.session.get_outputs()] != self.output_names:
            raise ModelFileError(f"{self.path}: exported by an older version of the export stage; {RERUN}")
        self.layout = DECODER_ONLY
        if self.seq2seq:  # T5: the encoder graph beside this one, and no position limit on the story
            self.encoder = load_session(self.path.with_name(ENCODER_FILES[self.path.name]), threads, verify)
            self.start_id = int(meta["decoder_start_token_id"])
            self.context = None
            self.layout = CacheLayout(2 * self.n_layer)
            self.cross_names = [o.name for o in self.encoder.get_outputs()]

    def empty_cache(self, batch: int) -> Cache:
        if self.seq2seq:
            return []  # the first step encodes the request
        return [np.zeros((batch, self.n_head, 0, self.head_dim), dtype=np.float32)] * len(self.past_names)

    def step(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray, cache: Cache
    ) -> tuple[np.ndarray, Cache]:
        ids, mask, positions = (
            np.ascontiguousarray(a, dtype=np.int64) for a in (input_ids, attention_mask, position_ids)
        )
        if self.seq2seq:
            return _seq2seq_step(self, ids, mask, cache)
        logits, new = self.step_new(ids, mask, positions, cache)
        return logits, grown(cache, new)

    @property
    def writes_in_place(self) -> bool:
        """Whether :meth:`step_new` is available (a decoder-only graph)."""
        return not self.seq2seq

    def step_new(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray, past: Cache
    ) -> tuple[np.ndarray, Cache]:
        """The logits and the new positions' keys and values, attending over ``past`` (read in place)."""
        if self.io_binding:
            return self._bound_step(input_ids, attention_mask, position_ids, past)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
        feeds |= dict(zip(self.past_names, past))
        logits, *new = self.session.run(self.output_names, feeds)
        return logits, new

    def _bound_step(
        self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, cache: Cache
    ) -> tuple[np.ndarray, Cache]:
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", positions)
        for name, value in zip(self.past_names, cache):
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        outputs = binding.copy_outputs_to_cpu()
        return outputs[0], list(outputs[1:])

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> Cache:
        return self.encoder.run(self.cross_names, {"input_ids": ids, "attention_mask": mask})

    def decode(self, ids: np.ndarray, mask: np.ndarray, encoder_mask: np.ndarray, past: Cache, cross: Cache):
        feeds = {"input_ids": ids, "attention_mask": mask, "encoder_mask": encoder_mask}
        feeds |= dict(zip(self.past_names, past)) | dict(zip(self.cross_names, cross))
        logits, *present = self.session.run(self.output_names, feeds)
        return logits, present

    def logits(self, ids):
        """(batch, n) ids (a torch tensor) -> (batch, n, vocab) logits from an empty cache (for bits per byte)."""
        import torch

        logits, _ = self.step(*full_inputs(ids.numpy()), self.empty_cache(ids.shape[0]))
        return torch.from_numpy(logits)


class _TorchModuleDecoder:
    """A torch module with the exported graph's signature (``logits, *new = module(ids, mask, positions,
    *past)``), run eagerly: the cache goes in and out as numpy arrays."""

    layout = DECODER_ONLY
    writes_in_place = True

    def __init__(self, module, n_layer: int, n_head: int, head_dim: int, context: int | None, eos_token_id: int | None):
        self.module = module
        self.n_layer, self.n_head, self.head_dim = n_layer, n_head, head_dim
        self.context, self.eos_token_id = context, eos_token_id

    def empty_cache(self, batch: int) -> Cache:
        return [np.zeros((batch, self.n_head, 0, self.head_dim), dtype=np.float32)] * (2 * self.n_layer)

    def step(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray, cache: Cache
    ) -> tuple[np.ndarray, Cache]:
        logits, new = self.step_new(input_ids, attention_mask, position_ids, cache)
        return logits, grown(cache, new)

    def step_new(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray, past: Cache
    ) -> tuple[np.ndarray, Cache]:
        import torch

        tensors = [
            torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for a in (input_ids, attention_mask, position_ids)
        ]
        with torch.no_grad(), decode_threads():
            logits, *new = self.module(*tensors, *(torch.from_numpy(np.ascontiguousarray(c)) for c in past))
        return logits.float().numpy(), [p.numpy() for p in new]

    def logits(self, ids):
        import torch

        logits, _ = self.step(*full_inputs(ids.numpy()), self.empty_cache(ids.shape[0]))
        return torch.from_numpy(logits)


class TorchDecoder(_TorchModuleDecoder):
    """A transformers causal LM in PyTorch (eager), through the same explicit-cache graph the export traces."""

    def __init__(self, model):
        from aitale.generation.graph import CachedDecoder

        graph = CachedDecoder(model)
        config = model.config
        super().__init__(graph, graph.n_layer, graph.n_head, graph.head_dim, graph.context, config.eos_token_id)


class TorchScriptDecoder(_TorchModuleDecoder):
    """The traced decoder saved by :func:`aitale.export.convert.export_torchscript`."""

    def __init__(self, path: str | Path, verify: bool = True):
        import torch

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"{self.path}: no such model file; {RERUN}")
        if verify:
            check_manifest(self.path)
        extra = {TORCHSCRIPT_META: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in torch 2.x
                module = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra).eval()
            meta = json.loads(extra[TORCHSCRIPT_META])
        except (RuntimeError, ValueError) as err:
            reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise ModelFileError(
                f"{self.path}: TorchScript cannot load this model, the file is corrupted or "
                f"truncated ({reason}); {RERUN}"
            ) from None
        super().__init__(
            module, meta["n_layer"], meta["n_head"], meta["head_dim"], meta["n_positions"], meta["eos_token_id"]
        )


def _seq2seq_step(decoder, ids: np.ndarray, mask: np.ndarray, cache: Cache) -> tuple[np.ndarray, Cache]:
    """A sequence-to-sequence step: from an empty cache, encode the request ``ids`` and write after the start
    token; else one more decoder step on the cache."""
    n = 2 * decoder.n_layer
    if not cache:
        cross = list(decoder.encode(ids, mask))
        encoder_mask = mask.astype(np.float32)[:, None, :, None]
        batch = ids.shape[0]
        past = [np.zeros((batch, decoder.n_head, 0, decoder.head_dim), dtype=np.float32)] * n
        ids = np.full((batch, 1), decoder.start_id, dtype=np.int64)
        mask = np.ones((batch, 1), dtype=np.int64)
    else:
        past, cross, encoder_mask = cache[:n], cache[n:-1], cache[-1]
    logits, present = decoder.decode(ids, mask, encoder_mask, past, cross)
    return logits, [*present, *cross, encoder_mask]


class TorchSeq2SeqDecoder:
    """A transformers T5 in PyTorch (eager), through the encoder and cached-decoder graphs the export traces."""

    def __init__(self, model):
        from aitale.generation.graph import Seq2SeqCachedDecoder, Seq2SeqEncoder

        self.encoder, self.decoder = Seq2SeqEncoder(model), Seq2SeqCachedDecoder(model)
        self.n_layer, self.n_head, self.head_dim = self.decoder.n_layer, self.decoder.n_head, self.decoder.head_dim
        self.context = None  # relative positions: no limit but max_new_tokens
        self.eos_token_id = model.config.eos_token_id
        self.start_id = model.config.decoder_start_token_id
        self.layout = CacheLayout(2 * self.n_layer)

    def empty_cache(self, batch: int) -> Cache:
        return []

    def step(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray, cache: Cache
    ) -> tuple[np.ndarray, Cache]:
        ids, mask = (np.ascontiguousarray(a, dtype=np.int64) for a in (input_ids, attention_mask))
        return _seq2seq_step(self, ids, mask, cache)

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> Cache:
        import torch

        with torch.no_grad(), decode_threads():
            return [c.numpy() for c in self.encoder(torch.from_numpy(ids), torch.from_numpy(mask))]

    def decode(self, ids: np.ndarray, mask: np.ndarray, encoder_mask: np.ndarray, past: Cache, cross: Cache):
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (ids, mask, encoder_mask, *past, *cross)]
        with torch.no_grad(), decode_threads():
            logits, *present = self.decoder(*tensors)
        return logits.float().numpy(), [p.numpy() for p in present]
