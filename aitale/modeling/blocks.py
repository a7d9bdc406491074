"""Tokenising a split with ``datasets.map`` (cached) and packing it into fixed-length blocks.

Stories are concatenated, each ending with its end-of-text token, and cut into blocks of
``block_size`` tokens: no padding at all. The last, partial block is completed with tokens
from the start of the stream, so the corpus tail is trained on rather than dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from aitale.data.structure import request_and_story, strip_controls

datasets.disable_progress_bars()

IGNORE = -100  # label of a padded target position: no loss
REQUEST_TOKENS = 64  # a request (title and controls) is far shorter; longer titles are cut


@dataclass(frozen=True)
class Blocks:
    ids: torch.Tensor  # (n_blocks, block_size) int64; sequence-to-sequence: the requests, padded
    tokens: int  # real tokens in the split (before wrap-around); sequence-to-sequence: target tokens
    stories: int
    pad_token_id: int | None = None
    targets: torch.Tensor | None = None  # sequence-to-sequence only: the stories, padded with IGNORE
    bytes: int = 0  # UTF-8 bytes of the texts tokenized: tokens per byte for bits per byte

    def bits_per_byte(self, loss: float) -> float:
        """A mean next-token loss (nats) over these blocks as bits per byte of their text."""
        return loss * self.tokens / (self.bytes * math.log(2)) if self.bytes else math.nan

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def non_padding_fraction(self) -> float:
        """Share of the block positions holding a real token rather than padding."""
        if self.pad_token_id is None or not self.ids.numel():
            return 1.0
        return round(float((self.ids != self.pad_token_id).float().mean()), 6)


def load_blocks(
    path: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    keep: Callable[[dict], bool] | None = None,
    control_dropout: float = 0.0,
    seed: int = 0,
) -> Blocks:
    """Blocks of the records in ``path`` (a jsonl split), optionally only those ``keep`` accepts.

    A ``control_dropout`` share of the records, chosen by a seeded hash of their ids, lose their
    control line (age group, style, themes), so the model also learns to write unconditioned.
    """
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    if keep is not None:
        dataset = dataset.filter(keep)
    if len(dataset) == 0:
        raise ValueError(f"{path}: no stories to train on" + (" in this slice" if keep else ""))

    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = [
            strip_controls(text) if _unit_hash(seed, key) < control_dropout else text
            for text, key in zip(batch["structured"], batch["id"])
        ]
        return {"input_ids": tokenizer(texts)["input_ids"], "n_bytes": [len(t.encode("utf-8")) for t in texts]}

    tokenized = dataset.map(encode, batched=True, remove_columns=dataset.column_names)
    stream = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in tokenized["input_ids"]])
    return Blocks(
        ids=torch.from_numpy(pack(stream, block_size)),
        tokens=len(stream),
        stories=len(dataset),
        pad_token_id=tokenizer.pad_token_id,
        bytes=int(sum(tokenized["n_bytes"])),
    )


def _unit_hash(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by ``seed`` and ``key``."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:8], "big") / 2**64


def pack(stream: np.ndarray, block_size: int) -> np.ndarray:
    """Cut ``stream`` into rows of ``block_size``, wrapping around to fill the last one."""
    n_blocks = -(-len(stream) // block_size)
    needed = n_blocks * block_size
    repeats = -(-needed // len(stream))
    return np.tile(stream, repeats)[:needed].reshape(n_blocks, block_size)


def load_pairs(
    path: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    max_target: int,
    keep: Callable[[dict], bool] | None = None,
    control_dropout: float = 0.0,
    seed: int = 0,
) -> Blocks:
    """The records of ``path`` as (request, story) pairs for a sequence-to-sequence model: requests padded with
    the pad token, stories cut to ``max_target`` tokens (end-of-sequence included) and padded with IGNORE."""
    from aitale.io import read_jsonl

    records = [r for r in read_jsonl(path) if keep is None or keep(r)]
    if not records:
        raise ValueError(f"{path}: no stories to train on" + (" in this slice" if keep else ""))
    pairs = [request_and_story(r, _unit_hash(seed, r["id"]) < control_dropout) for r in records]
    eos = tokenizer.eos_token_id
    requests = [tokenizer(q, add_special_tokens=False).input_ids[:REQUEST_TOKENS] for q, _ in pairs]
    stories = [tokenizer(s, add_special_tokens=False).input_ids[: max_target - 1] + [eos] for _, s in pairs]
    return Blocks(
        ids=_padded(requests, tokenizer.pad_token_id),
        tokens=sum(map(len, stories)),
        stories=len(records),
        pad_token_id=tokenizer.pad_token_id,
        targets=_padded(stories, IGNORE),
    )


def _padded(rows: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out
