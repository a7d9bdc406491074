"""The batch loop of a decoder that returns its whole cache at every step: a sequence-to-sequence model (T5).

Rows are prefilled one by one (the first step encodes the request), then join: the caches of all rows
are left-padded to one length, with the padding masked out, and every step feeds each row its last
token. The encoder side of the cache (every layer's cross-attention keys and values and the request's
mask, :class:`~aitale.generation.decoders.CacheLayout`) is as long as each row's request, so it is
right-padded with zeros per row instead. Cache columns that only padding still holds are trimmed away
when rows leave. Rows, sampling and endings are :class:`~aitale.generation.batch.Rows`'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from aitale.generation.batch import Row, Rows
from aitale.generation.decoders import DECODER_ONLY, Cache, CacheLayout, Decoder, full_inputs


class PaddedBatch(Rows):
    """The rows a decoder is writing together, with their padded cache."""

    def __init__(
        self, decoder: Decoder, eos_token_id: int | None = None, decode: Callable[[list[int]], str] | None = None
    ):
        super().__init__(decoder, eos_token_id, decode)
        self.layout: CacheLayout = getattr(decoder, "layout", DECODER_ONLY)
        self.cache: Cache = []
        self.mask = np.zeros((0, 0), dtype=np.int64)

    @property
    def width(self) -> int:
        """Cache positions per row (the longest row's length)."""
        return self.mask.shape[1]

    def admit(self, rows: Sequence[Row]) -> list[Row]:
        """Prefill ``rows``, draw each one's first token and let them join; returns those already ended."""
        joining, caches = [], []
        for row in rows:
            # the repetition rules read the decoder's own ids (its start token and the new tokens), as
            # transformers' generate has them for a sequence-to-sequence model
            self.limit(row, history=[self.decoder.start_id] if self.layout.positional is not None else None)
            logits, cache = self.decoder.step(
                *full_inputs(np.array([row.prompt], dtype=np.int64)), self.decoder.empty_cache(1)
            )
            self.extend([row], logits[:, -1])
            if not row.done:
                joining.append(row)
                caches.append(cache)
        if joining:
            self._join(joining, caches)
        return [row for row in rows if row.done]

    def _step(self, ids: np.ndarray) -> np.ndarray:
        positions = np.array([[len(row.prompt) + len(row.tokens) - 1] for row in self.rows], dtype=np.int64)
        self.mask = np.concatenate([self.mask, np.ones((len(self.rows), 1), dtype=np.int64)], axis=1)
        logits, self.cache = self.decoder.step(ids, self.mask, positions, self.cache)
        return logits

    def _keep(self, keep: list[int]) -> None:
        """The kept rows' cache, less the columns only the leaving rows needed."""
        self.mask = self.mask[keep]
        self.cache = [layer[keep] for layer in self.cache]
        # the leftmost columns may now be padding in every remaining row
        used = np.flatnonzero(self.mask.any(axis=0))
        start = int(used[0]) if used.size else self.mask.shape[1]
        if start:
            self.mask = self.mask[:, start:]
            positional, encoded = self.layout.split(self.cache)
            self.cache = [layer[:, :, start:] for layer in positional] + encoded

    def _join(self, rows: list[Row], caches: list[Cache]) -> None:
        lengths = [cache[0].shape[2] for cache in caches]
        width = max([self.width, *lengths])
        masks = [_left_pad(self.mask, width)] + [_left_pad(np.ones((1, n), dtype=np.int64), width) for n in lengths]
        self.mask = np.concatenate(masks, axis=0)
        parts = ([self.cache] if self.rows else []) + list(caches)
        split = [self.layout.split(cache) for cache in parts]
        # an encoder side (T5's) is as long as each row's request: right-padded with zeros, its mask's padding
        source = max((layer.shape[2] for _, encoded in split for layer in encoded), default=0)
        self.cache = [
            np.concatenate(layers, axis=0)
            for layers in zip(
                *(
                    [_left_pad(layer, width, axis=2) for layer in positional] + [_right_pad(e, source) for e in encoded]
                    for positional, encoded in split
                )
            )
        ]
        self.rows += rows


def _right_pad(array: np.ndarray, width: int, axis: int = 2) -> np.ndarray:
    missing = width - array.shape[axis]
    if missing <= 0:
        return array
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, missing)
    return np.pad(array, pad)


def _left_pad(array: np.ndarray, width: int, axis: int = 1) -> np.ndarray:
    missing = width - array.shape[axis]
    if missing <= 0:
        return array
    pad = [(0, 0)] * array.ndim
    pad[axis] = (missing, 0)
    return np.pad(array, pad)
