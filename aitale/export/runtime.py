"""Running the exported decoders: onnxruntime sessions, TorchScript, and story generation.

Both decoders have the same ``step``: new ids (batch, new), the attention mask over past and
new positions, their position ids and the cache from the previous step go in; the logits
of the new positions and the grown cache come out.

:func:`generate` writes a continuation with either decoder, greedy or sampled, with the
``generate`` params (temperature, top_k, top_p, no_repeat_ngram_size, repetition_penalty,
min/max new tokens), applied in the order transformers applies them: greedy output is
token for token that of ``model.generate(do_sample=False)`` with the same settings.

    decoder = OnnxDecoder("models/onnx/model_int8.onnx")
    ids = generate(decoder, tokenizer(prompt(title)).input_ids, params)
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
import torch

from aitale.export.decoder import TORCHSCRIPT_META, output_names, past_names
from aitale.params import GenerateParams

MANIFEST = "manifest.json"  # written by the export stage beside its files: size and sha256 of each
RERUN = "re-run the export stage (python -m stages.export, or `dvc repro export`)"


class ModelFileError(RuntimeError):
    """An exported model file is missing, corrupted or truncated."""


class Decoder(Protocol):
    n_layer: int
    context: int | None
    eos_token_id: int | None

    def empty_cache(self, batch: int) -> list[Any]: ...

    def step(self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
             cache: Sequence[Any]) -> tuple[np.ndarray, list[Any]]: ...


def intra_op_threads() -> int:
    """One compute thread per core this process may use (as torch's default)."""
    return max(1, torch.get_num_threads())


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
        raise ModelFileError(f"{path}: {size} bytes, but the export wrote {entry['bytes']}: the file is "
                             f"truncated or corrupted; {RERUN}")
    if sha256(path) != entry["sha256"]:
        raise ModelFileError(f"{path}: its checksum differs from the one the export recorded: the file is "
                             f"corrupted; {RERUN}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _ort_errors() -> tuple[type[BaseException], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph",
             "RuntimeException", "NotImplemented", "ModelLoaded", "EPFail")
    return tuple(getattr(state, name) for name in names if hasattr(state, name)) + (RuntimeError,)


def load_session(path: str | Path, threads: int | None = None, verify: bool = True) -> ort.InferenceSession:
    """An onnxruntime CPU session, or a :class:`ModelFileError` that names the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; {RERUN}")
    if verify:
        check_manifest(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or intra_op_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except _ort_errors() as err:
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"{path}: onnxruntime cannot load this model, the file is corrupted or truncated "
                             f"({reason}); {RERUN}") from None


class OnnxDecoder:
    """An exported decoder graph on onnxruntime (CPU).

    The cache travels as numpy arrays through ``session.run``, which wraps inputs and
    outputs without copying them. ``io_binding=True`` binds it as ``OrtValue``\\s instead;
    ``benchmarks/export_speed.py`` times both: the binding calls cost more than they save.
    """

    def __init__(self, path: str | Path, threads: int | None = None, verify: bool = True, io_binding: bool = False):
        self.path = Path(path)
        self.session = load_session(self.path, threads, verify)
        self.io_binding = io_binding
        inputs = {node.name: node for node in self.session.get_inputs()}
        if "past_key_0" not in inputs:
            raise ModelFileError(f"{self.path}: not a decoder written by the export stage (no past_key_0 input); "
                                 f"{RERUN}")
        self.n_layer = sum(name.startswith("past_key_") for name in inputs)
        _, self.n_head, _, self.head_dim = inputs["past_key_0"].shape
        meta = self.session.get_modelmeta().custom_metadata_map
        self.context = int(meta["n_positions"]) if "n_positions" in meta else None
        self.eos_token_id = int(meta["eos_token_id"]) if meta.get("eos_token_id", "None") != "None" else None
        self.past_names = past_names(self.n_layer)
        self.output_names = output_names(self.n_layer)

    def empty_cache(self, batch: int) -> list[Any]:
        empty = np.zeros((batch, self.n_head, 0, self.head_dim), dtype=np.float32)
        if self.io_binding:
            return [ort.OrtValue.ortvalue_from_numpy(empty) for _ in self.past_names]
        return [empty] * len(self.past_names)

    def step(self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
             cache: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
        ids, mask, positions = (np.ascontiguousarray(a, dtype=np.int64) for a in (input_ids, attention_mask,
                                                                                    position_ids))
        if self.io_binding:
            return self._bound_step(ids, mask, positions, cache)
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                 **dict(zip(self.past_names, cache))}
        logits, *present = self.session.run(self.output_names, feeds)
        return logits, present

    def _bound_step(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray,
                    cache: Sequence[ort.OrtValue]) -> tuple[np.ndarray, list[ort.OrtValue]]:
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", positions)
        for name, value in zip(self.past_names, cache):
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        return outputs[0].numpy(), list(outputs[1:])

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(batch, n) ids -> (batch, n, vocab) logits from an empty cache (for bits per byte)."""
        logits, _ = self.step(*full_inputs(ids.numpy()), self.empty_cache(ids.shape[0]))
        return torch.from_numpy(logits)


class TorchScriptDecoder:
    """The traced decoder saved by :func:`aitale.export.convert.export_torchscript`."""

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"{self.path}: no such model file; {RERUN}")
        if verify:
            check_manifest(self.path)
        extra = {TORCHSCRIPT_META: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in torch 2.x
                self.module = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra).eval()
            meta = json.loads(extra[TORCHSCRIPT_META])
        except (RuntimeError, ValueError) as err:
            reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise ModelFileError(f"{self.path}: TorchScript cannot load this model, the file is corrupted or "
                                 f"truncated ({reason}); {RERUN}") from None
        self.n_layer, self.n_head, self.head_dim = meta["n_layer"], meta["n_head"], meta["head_dim"]
        self.context, self.eos_token_id = meta["n_positions"], meta["eos_token_id"]

    def empty_cache(self, batch: int) -> list[torch.Tensor]:
        return [torch.zeros(batch, self.n_head, 0, self.head_dim) for _ in range(2 * self.n_layer)]

    @torch.no_grad()
    def step(self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
             cache: Sequence[torch.Tensor]) -> tuple[np.ndarray, list[torch.Tensor]]:
        logits, *present = self.module(torch.from_numpy(np.asarray(input_ids, dtype=np.int64)),
                                       torch.from_numpy(np.asarray(attention_mask, dtype=np.int64)),
                                       torch.from_numpy(np.asarray(position_ids, dtype=np.int64)), *cache)
        return logits.numpy(), present

    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        logits, _ = self.step(*full_inputs(ids.numpy()), self.empty_cache(ids.shape[0]))
        return torch.from_numpy(logits)


def full_inputs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids, an all-ones mask and positions 0..n-1, for a step from an empty cache."""
    batch, length = ids.shape
    positions = np.repeat(np.arange(length, dtype=np.int64)[None], batch, axis=0)
    return ids.astype(np.int64), np.ones((batch, length), dtype=np.int64), positions


# --- generation --------------------------------------------------------------------------


def generate(decoder: Decoder, prompt_ids: Sequence[int], params: GenerateParams, *, do_sample: bool | None = None,
             seed: int | None = None, eos_token_id: int | None = None) -> list[int]:
    """The new tokens after ``prompt_ids`` (batch 1), ending with EOS if the model wrote it.

    ``do_sample`` and ``seed`` default to ``params``; the continuation stops at EOS, after
    ``params.max_new_tokens``, or where the model's positions run out.
    """
    do_sample = params.do_sample if do_sample is None else do_sample
    eos = decoder.eos_token_id if eos_token_id is None else eos_token_id
    rng = np.random.default_rng(params.seed if seed is None else seed)
    ids = list(prompt_ids)
    if not ids:
        raise ValueError("generate needs a prompt of at least one token")
    max_new = params.max_new_tokens
    if decoder.context is not None:
        if len(ids) >= decoder.context:
            ids = ids[-(decoder.context // 2):]
        max_new = min(max_new, decoder.context - len(ids))
    min_new = min(params.min_new_tokens, max_new)
    prompt_length = len(ids)
    cache = decoder.empty_cache(1)
    new_ids, mask, positions = full_inputs(np.array([ids], dtype=np.int64))
    while len(ids) - prompt_length < max_new:
        logits, cache = decoder.step(new_ids, mask, positions, cache)
        scores = process(logits[0, -1].astype(np.float32), ids, len(ids) - prompt_length, params, min_new, eos,
                         do_sample)
        token = sample(scores, rng) if do_sample else int(np.argmax(scores))
        ids.append(token)
        if token == eos:
            break
        new_ids = np.array([[token]], dtype=np.int64)
        mask = np.ones((1, len(ids)), dtype=np.int64)
        positions = np.array([[len(ids) - 1]], dtype=np.int64)
    return ids[prompt_length:]


def process(scores: np.ndarray, ids: Sequence[int], generated: int, params: GenerateParams, min_new: int,
            eos: int | None, do_sample: bool) -> np.ndarray:
    """transformers' logits processors, in its order: penalties and bans, then the sampling warpers."""
    scores = scores.copy()
    if params.repetition_penalty != 1.0:
        seen = np.unique(np.asarray(ids))
        picked = scores[seen]
        scores[seen] = np.where(picked < 0, picked * params.repetition_penalty, picked / params.repetition_penalty)
    if params.no_repeat_ngram_size:
        scores[banned_ngram_tokens(ids, params.no_repeat_ngram_size)] = -np.inf
    if eos is not None and generated < min_new:
        scores[eos] = -np.inf
    if not do_sample:
        return scores
    scores = scores / np.float32(params.temperature)
    if 0 < params.top_k < scores.size:
        kth = np.partition(scores, -params.top_k)[-params.top_k]
        scores[scores < kth] = -np.inf
    if params.top_p < 1.0:
        order = np.argsort(scores, kind="stable")  # ascending, as transformers' TopPLogitsWarper
        cumulative = np.cumsum(softmax(scores[order]))
        remove = cumulative <= (1 - params.top_p)
        remove[-1] = False  # always keep the likeliest token
        scores[order[remove]] = -np.inf
    return scores


def banned_ngram_tokens(ids: Sequence[int], n: int) -> list[int]:
    """Tokens that would repeat an n-gram already in ``ids`` (prompt and continuation)."""
    if len(ids) + 1 < n:
        return []
    prefix = tuple(ids[len(ids) - n + 1:]) if n > 1 else ()
    return [ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i:i + n - 1]) == prefix]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


def sample(scores: np.ndarray, rng: np.random.Generator) -> int:
    cumulative = np.cumsum(softmax(scores.astype(np.float64)))
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), scores.size - 1))
