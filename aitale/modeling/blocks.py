"""Tokenising a split with ``datasets.map`` (cached) and packing it into fixed-length blocks.

Stories are concatenated, each ending with its end-of-text token, and cut into blocks of
``block_size`` tokens: no padding at all. The last, partial block is completed with tokens
from the start of the stream, so the corpus tail is trained on rather than dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

datasets.disable_progress_bars()


@dataclass(frozen=True)
class Blocks:
    ids: torch.Tensor  # (n_blocks, block_size) int64
    tokens: int  # real tokens in the split (before wrap-around)
    stories: int

    def __len__(self) -> int:
        return self.ids.shape[0]


def load_blocks(
    path: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    keep: Callable[[dict], bool] | None = None,
) -> Blocks:
    """Blocks of the records in ``path`` (a jsonl split), optionally only those ``keep`` accepts."""
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    if keep is not None:
        dataset = dataset.filter(keep)
    if len(dataset) == 0:
        raise ValueError(f"{path}: no stories to train on" + (" in this slice" if keep else ""))
    tokenized = dataset.map(
        lambda batch: {"input_ids": tokenizer(batch["structured"])["input_ids"]},
        batched=True,
        remove_columns=dataset.column_names,
    )
    stream = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in tokenized["input_ids"]])
    return Blocks(ids=torch.from_numpy(pack(stream, block_size)), tokens=len(stream), stories=len(dataset))


def pack(stream: np.ndarray, block_size: int) -> np.ndarray:
    """Cut ``stream`` into rows of ``block_size``, wrapping around to fill the last one."""
    n_blocks = -(-len(stream) // block_size)
    needed = n_blocks * block_size
    repeats = -(-needed // len(stream))
    return np.tile(stream, repeats)[:needed].reshape(n_blocks, block_size)
