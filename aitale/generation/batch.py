"""The batched step loop: rows join and leave a running batch at every token step.

Each row keeps its own settings, its own seeded random generator and its own positions,
so it draws the same tokens whether it runs alone or beside others. A row is prefilled on
its own (batch 1) and then joins the batch: the caches of all rows are left-padded to one
length, with the padding masked out, and every step feeds each row its last token. Rows
leave when they end (end-of-text, a stop string, their token limit or the context) or are
cancelled, and cache columns that only padding still holds are trimmed away.

:func:`generate` runs a fixed set of prompts to the end; the server's engine drives a
:class:`Batch` itself, admitting new requests between steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aitale.generation.decoders import DECODER_ONLY, Cache, CacheLayout, Decoder, full_inputs
from aitale.generation.sampling import GenerationSettings, choose, masked, process

LENGTH, STOP, CANCELLED = "length", "stop", "cancelled"  # why a row ended (OpenAI's finish_reason words)


@dataclass(eq=False)
class Row:
    """One sequence being written."""

    prompt: list[int]
    settings: GenerationSettings  # within the model's context once the row is admitted
    key: Any = None  # the caller's handle (a request id)
    tokens: list[int] = field(default_factory=list)  # written so far (end-of-text included when written)
    finish_reason: str | None = None
    stop_text: str | None = None  # the text up to a stop string, when one ended the row
    mask: Any = None  # tokens it may never write: ``mask.banned(ids)`` flags them (aitale.safety.mask.TokenMask)
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.settings.seed)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class Batch:
    """The rows a decoder is writing together, with their padded cache.

    ``decode`` (token ids -> text) is needed only for rows with stop strings.
    """

    def __init__(
        self, decoder: Decoder, eos_token_id: int | None = None, decode: Callable[[list[int]], str] | None = None
    ):
        self.decoder = decoder
        self.layout: CacheLayout = getattr(decoder, "layout", DECODER_ONLY)
        self.eos = decoder.eos_token_id if eos_token_id is None else eos_token_id
        self.decode = decode
        self.rows: list[Row] = []
        self.cache: Cache = []
        self.mask = np.zeros((0, 0), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def width(self) -> int:
        """Cache positions per row (the longest row's length)."""
        return self.mask.shape[1]

    def admit(self, rows: Sequence[Row]) -> list[Row]:
        """Prefill ``rows``, draw each one's first token and let them join; returns those already ended."""
        ended, joining, caches = [], [], []
        for row in rows:
            self._limit(row)
            logits, cache = self.decoder.step(
                *full_inputs(np.array([row.prompt], dtype=np.int64)), self.decoder.empty_cache(1)
            )
            self._extend(row, logits[0, -1])
            if row.done:
                ended.append(row)
            else:
                joining.append(row)
                caches.append(cache)
        if joining:
            self._join(joining, caches)
        return ended

    def advance(self) -> list[Row]:
        """One token for every row; the rows that ended with it leave the batch and are returned."""
        if not self.rows:
            return []
        batch = len(self.rows)
        ids = np.array([[row.tokens[-1]] for row in self.rows], dtype=np.int64)
        positions = np.array([[len(row.prompt) + len(row.tokens) - 1] for row in self.rows], dtype=np.int64)
        self.mask = np.concatenate([self.mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
        logits, self.cache = self.decoder.step(ids, self.mask, positions, self.cache)
        for i, row in enumerate(self.rows):
            self._extend(row, logits[i, -1])
        ended = [row for row in self.rows if row.done]
        if ended:
            self.remove(ended)
        return ended

    def remove(self, rows: Sequence[Row], reason: str = CANCELLED) -> None:
        """Drop ``rows`` (those not ended yet end with ``reason``) and the cache columns only they needed."""
        leaving = {id(row) for row in rows}
        for row in rows:
            if not row.done:
                row.finish_reason = reason
        keep = [i for i, row in enumerate(self.rows) if id(row) not in leaving]
        self.rows = [self.rows[i] for i in keep]
        self.mask = self.mask[keep]
        self.cache = [layer[keep] for layer in self.cache]
        # the leftmost columns may now be padding in every remaining row
        used = np.flatnonzero(self.mask.any(axis=0))
        start = int(used[0]) if used.size else self.mask.shape[1]
        if start:
            self.mask = self.mask[:, start:]
            positional, encoded = self.layout.split(self.cache)
            self.cache = [layer[:, :, start:] for layer in positional] + encoded

    def _limit(self, row: Row) -> None:
        context = self.decoder.context
        if not row.prompt:
            raise ValueError("a prompt needs at least one token")
        if context is not None and len(row.prompt) >= context:
            row.prompt = row.prompt[-(context // 2) :]  # keep the latest half of the context
        row.settings = row.settings.within(None if context is None else context - len(row.prompt))

    def _extend(self, row: Row, logits: np.ndarray) -> None:
        settings = row.settings
        history = self._history(row)
        if row.mask is not None:
            logits = masked(logits, row.mask.banned(history))
        scores = process(logits, history, len(row.tokens), settings, self.eos)
        token = choose(scores, settings, row.rng)
        row.tokens.append(token)
        if token == self.eos:
            row.finish_reason = STOP
        elif settings.stop and self.decode is not None and (text := self._stopped(row)) is not None:
            row.finish_reason, row.stop_text = STOP, text
        elif len(row.tokens) >= settings.max_new_tokens:
            row.finish_reason = LENGTH

    def _history(self, row: Row) -> list[int]:
        """The ids the repetition rules look at: the prompt and the new tokens; for a sequence-to-sequence model
        the decoder's own (its start token and the new tokens), as transformers' ``generate`` has them."""
        if self.layout.positional is None:
            return row.prompt + row.tokens
        return [self.decoder.start_id, *row.tokens]

    def _stopped(self, row: Row) -> str | None:
        text = self.decode(row.tokens)
        cut = min((i for i in (text.find(stop) for stop in row.settings.stop) if i >= 0), default=-1)
        return text[:cut] if cut >= 0 else None

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


def generate(
    decoder: Decoder,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings | Sequence[GenerationSettings],
    *,
    eos_token_id: int | None = None,
    max_batch: int | None = None,
    decode: Callable[[list[int]], str] | None = None,
    on_end: Callable[[Row], None] | None = None,
    masks: Sequence[Any] | None = None,
) -> list[Row]:
    """Every prompt written to its end, ``max_batch`` rows at a time (all at once by default), in order.

    ``settings`` is one for all rows or one per prompt. Each returned row holds the new
    tokens (ending with end-of-text if the model wrote it) and why it ended; ``on_end`` is
    called with each row as it ends (a progress bar); ``masks``, one per prompt (or None), the tokens each row may
    never write.
    """
    per_row = [settings] * len(prompts) if isinstance(settings, GenerationSettings) else list(settings)
    if len(per_row) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(per_row)} settings")
    masks = [None] * len(prompts) if masks is None else list(masks)
    rows = [Row(list(p), s, key=i, mask=m) for i, (p, s, m) in enumerate(zip(prompts, per_row, masks))]
    batch = Batch(decoder, eos_token_id, decode)
    waiting = list(rows)
    limit = max_batch or len(rows) or 1
    while waiting or len(batch):
        if waiting and len(batch) < limit:
            admitted, waiting = waiting[: limit - len(batch)], waiting[limit - len(batch) :]
            ended = batch.admit(admitted)
        else:
            ended = batch.advance()
        for row in ended if on_end else ():
            on_end(row)
    return rows


def generate_one(decoder: Decoder, prompt: Sequence[int], settings: GenerationSettings, **options) -> list[int]:
    """The new tokens after ``prompt`` (one row)."""
    return generate(decoder, [prompt], settings, **options)[0].tokens
