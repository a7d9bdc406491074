"""The batched step loop: rows join and leave a running batch at every token step.

Each row keeps its own settings, its own seeded random generator and its own positions, so it
draws the same tokens whether it runs alone or beside others. Rows that arrive together are
prefilled together, in one call; then every step feeds each row its last token and draws the
next token of every row at once (:func:`~aitale.generation.sampling.next_tokens`). Rows leave
when they end (end-of-text, a stop string, their token limit or the context) or are cancelled.

A decoder-only model's keys and values live in :class:`Slots`, buffers allocated ahead and
written in place: row ``r`` holds its position ``j`` in column ``j`` of slot ``r``, the graph
reads the buffers where they are and returns only the new positions, which are written into
their columns. Nothing grows or is copied at a step; the buffers grow by :data:`CHUNK` columns
when the longest row needs it, and a row that leaves gives its slot to the last row. A
sequence-to-sequence model (T5), whose decoder returns its whole cache, runs in
:class:`~aitale.generation.padded.PaddedBatch` with the same rows and sampler (:func:`batch_for`).

:func:`generate` runs a fixed set of prompts to the end; the server's engine drives a batch
itself, admitting new requests between steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aitale.generation.decoders import Decoder
from aitale.generation.sampling import GenerationSettings, History, masked, next_tokens

LENGTH, STOP, CANCELLED = "length", "stop", "cancelled"  # why a row ended (OpenAI's finish_reason words)
CHUNK = 64  # cache columns added (or taken away) at a time


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
    history: History | None = field(default=None, repr=False)  # the ids the repetition rules read

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.settings.seed)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class Rows:
    """What every batch does with its rows: admit them within the context, draw their next tokens, end them."""

    def __init__(self, decoder: Decoder, eos_token_id: int | None, decode: Callable[[list[int]], str] | None):
        self.decoder = decoder
        self.eos = decoder.eos_token_id if eos_token_id is None else eos_token_id
        self.decode = decode  # token ids -> text, needed only for rows with stop strings
        self.rows: list[Row] = []

    def __len__(self) -> int:
        return len(self.rows)

    def limit(self, row: Row, history: list[int] | None = None) -> None:
        """Fit the row to the context; ``history`` is what its repetition rules start from (the prompt)."""
        context = self.decoder.context
        if not row.prompt:
            raise ValueError("a prompt needs at least one token")
        if context is not None and len(row.prompt) >= context:
            row.prompt = row.prompt[-(context // 2) :]  # keep the latest half of the context
        row.settings = row.settings.within(None if context is None else context - len(row.prompt))
        row.history = History(row.prompt if history is None else history, row.settings)

    def extend(self, rows: Sequence[Row], logits: np.ndarray) -> None:
        """The next token of each row from its logits (rows, vocab), and whether that ends it."""
        for i, row in enumerate(rows):
            if row.mask is not None:  # the age group's never-allowed words (aitale.safety.mask)
                logits[i] = masked(logits[i], row.mask.banned(_tail(row)))
        tokens = next_tokens(
            logits,
            [row.settings for row in rows],
            [row.history for row in rows],
            [len(row.tokens) for row in rows],
            [row.rng for row in rows],
            self.eos,
        )
        for row, token in zip(rows, tokens):
            row.tokens.append(token)
            row.history.add(token)
            if token == self.eos:
                row.finish_reason = STOP
            elif row.settings.stop and self.decode is not None and (text := self._stopped(row)) is not None:
                row.finish_reason, row.stop_text = STOP, text
            elif len(row.tokens) >= row.settings.max_new_tokens:
                row.finish_reason = LENGTH

    def advance(self) -> list[Row]:
        """One token for every row; the rows that ended with it leave the batch and are returned."""
        if not self.rows:
            return []
        ids = np.array([[row.tokens[-1]] for row in self.rows], dtype=np.int64)
        self.extend(self.rows, self._step(ids)[:, -1])
        ended = [row for row in self.rows if row.done]
        if ended:
            self.remove(ended)
        return ended

    def remove(self, rows: Sequence[Row], reason: str = CANCELLED) -> None:
        """Drop ``rows`` (those not ended yet end with ``reason``) and what the batch holds for them only."""
        leaving = {id(row) for row in rows}
        for row in rows:
            if not row.done:
                row.finish_reason = reason
        keep = [i for i, row in enumerate(self.rows) if id(row) not in leaving]
        self._keep(keep)
        self.rows = [self.rows[i] for i in keep]

    def _step(self, ids: np.ndarray) -> np.ndarray:
        """Feed every row its last token (``ids``: rows x 1); the logits (rows, 1, vocab)."""
        raise NotImplementedError

    def _keep(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep`` (indices into ``self.rows``, still the old rows when called)."""
        raise NotImplementedError

    def _stopped(self, row: Row) -> str | None:
        """The text before a stop string, once the row's text holds one. Only the last tokens are decoded to
        look (an earlier stop string would have ended the row earlier); the whole text only on a find."""
        longest = max(len(stop.encode()) for stop in row.settings.stop)
        tail = self.decode(row.tokens[-(longest + 4) :])
        if not any(stop in tail for stop in row.settings.stop):
            return None
        text = self.decode(row.tokens)
        cut = min((i for i in (text.find(stop) for stop in row.settings.stop) if i >= 0), default=-1)
        return text[:cut] if cut >= 0 else None


class Batch(Rows):
    """The rows a decoder-only model is writing together, their keys and values in :class:`Slots`."""

    def __init__(
        self, decoder: Decoder, eos_token_id: int | None = None, decode: Callable[[list[int]], str] | None = None
    ):
        super().__init__(decoder, eos_token_id, decode)
        self.slots = Slots(decoder)

    def admit(self, rows: Sequence[Row]) -> list[Row]:
        """Prefill ``rows`` together, draw each one's first token and let them join; returns those already ended."""
        if not rows:
            return []
        for row in rows:
            self.limit(row)
        lengths = np.array([len(row.prompt) for row in rows], dtype=np.int64)
        width = int(lengths.max())
        ids = np.zeros((len(rows), width), dtype=np.int64)  # right-padded: each prompt from column 0
        for i, row in enumerate(rows):
            ids[i, : len(row.prompt)] = row.prompt
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        positions = np.repeat(np.arange(width, dtype=np.int64)[None], len(rows), axis=0)
        logits, new = self.decoder.step_new(ids, mask, positions, self.slots.empty(len(rows)))
        self.extend(rows, logits[np.arange(len(rows)), lengths - 1])
        joining = [i for i, row in enumerate(rows) if not row.done]
        if joining:
            self.slots.join(len(self.rows), [part[joining] for part in new], lengths[joining])
            self.rows += [rows[i] for i in joining]
        return [row for row in rows if row.done]

    def _step(self, ids: np.ndarray) -> np.ndarray:
        n = len(self.rows)
        positions = self.slots.lengths[:n, None].copy()  # each row's cache holds all but its last token
        self.slots.make_room()
        logits, new = self.decoder.step_new(ids, self.slots.mask[:n], positions, self.slots.past(n))
        self.slots.append(new)
        return logits

    def _keep(self, keep: list[int]) -> None:
        self.slots.keep(keep, len(self.rows))  # the leaving rows' slots are freed


class Slots:
    """Every row's keys and values in buffers written in place: per cache entry (two per layer) an array of
    (slots, heads, columns, head_dim), plus the attention mask (slots, columns + 1), whose last column is the
    position a step adds, and how many positions each slot holds. Unwritten columns are zero and masked."""

    def __init__(self, decoder: Decoder):
        self.entries, self.heads, self.head_dim = 2 * decoder.n_layer, decoder.n_head, decoder.head_dim
        self.context = decoder.context
        self.buffers = [self._zeros(0, 0) for _ in range(self.entries)]
        self.mask = np.ones((0, 1), dtype=np.int64)
        self.lengths = np.zeros(0, dtype=np.int64)

    @property
    def columns(self) -> int:
        return self.buffers[0].shape[2]

    def empty(self, rows: int) -> list[np.ndarray]:
        return [self._zeros(rows, 0)] * self.entries

    def past(self, n: int) -> list[np.ndarray]:
        """The first ``n`` slots of every buffer: views, contiguous, never copied."""
        return [buffer[:n] for buffer in self.buffers]

    def join(self, start: int, new: list[np.ndarray], lengths: np.ndarray) -> None:
        """Rows prefilled together take slots ``start`` on: their keys and values ``new`` (rows, heads,
        width, head_dim), of which each row's first ``lengths`` positions are real."""
        count, width = len(lengths), new[0].shape[2]
        self._resize(start + count, max(width, self.columns))
        for buffer, part in zip(self.buffers, new):
            buffer[start : start + count, :, :width] = part
        self.mask[start : start + count, :-1] = np.arange(self.columns)[None, :] < lengths[:, None]
        self.lengths[start : start + count] = lengths

    def make_room(self) -> None:
        """Columns for the next position of every row (the buffers grow by :data:`CHUNK`)."""
        if len(self.lengths) and self.lengths.max() >= self.columns:
            self._resize(len(self.lengths), self.columns + 1)

    def append(self, new: list[np.ndarray]) -> None:
        """One step's keys and values (rows, heads, 1, head_dim), each into its row's next column."""
        rows = np.arange(new[0].shape[0])
        at = self.lengths[rows]
        for buffer, part in zip(self.buffers, new):
            buffer[rows, :, at] = part[:, :, 0]
        self.mask[rows, at] = 1
        self.lengths[rows] += 1

    def keep(self, kept: list[int], used: int) -> None:
        """Keep the slots ``kept`` of the first ``used``, moved to the front in order; shrink what is unused."""
        if kept != list(range(len(kept))):
            for buffer in self.buffers:
                buffer[: len(kept)] = buffer[kept]
            self.mask[: len(kept)] = self.mask[kept]
            self.lengths[: len(kept)] = self.lengths[kept]
        self.lengths[len(kept) : used] = 0
        self.mask[len(kept) : used, :-1] = 0
        longest = int(self.lengths[: len(kept)].max()) if kept else 0
        if self.columns - longest > 2 * CHUNK:  # the long rows left: attend over fewer columns
            self._resize(len(self.lengths), longest + 1)

    def _resize(self, rows: int, columns: int) -> None:
        """At least ``rows`` slots and exactly enough :data:`CHUNK`-columns for ``columns`` (within the context)."""
        columns = -(-columns // CHUNK) * CHUNK
        if self.context is not None:
            columns = min(columns, self.context)
        rows = max(rows, len(self.lengths))
        if rows > len(self.lengths):
            rows = max(rows, 2 * len(self.lengths))
        if (rows, columns) == (len(self.lengths), self.columns):
            return
        keep_rows, keep_columns = min(rows, len(self.lengths)), min(columns, self.columns)
        buffers = []
        for old in self.buffers:
            buffer = self._zeros(rows, columns)
            buffer[:keep_rows, :, :keep_columns] = old[:keep_rows, :, :keep_columns]
            buffers.append(buffer)
        mask = np.zeros((rows, columns + 1), dtype=np.int64)
        mask[:keep_rows, :keep_columns] = self.mask[:keep_rows, :keep_columns]
        mask[:, -1] = 1
        lengths = np.zeros(rows, dtype=np.int64)
        lengths[:keep_rows] = self.lengths[:keep_rows]
        self.buffers, self.mask, self.lengths = buffers, mask, lengths

    def _zeros(self, rows: int, columns: int) -> np.ndarray:
        return np.zeros((rows, self.heads, columns, self.head_dim), dtype=np.float32)


def batch_for(
    decoder: Decoder, eos_token_id: int | None = None, decode: Callable[[list[int]], str] | None = None
) -> Batch:
    """The batch a decoder runs in: :class:`Batch` when its graph returns only the new positions, else (T5)
    :class:`~aitale.generation.padded.PaddedBatch`."""
    if getattr(decoder, "writes_in_place", False):
        return Batch(decoder, eos_token_id, decode)
    from aitale.generation.padded import PaddedBatch

    return PaddedBatch(decoder, eos_token_id, decode)


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
    batch = batch_for(decoder, eos_token_id, decode)
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


_MASK_TAIL = 32  # ids a mask reads back: enough for the longest banned word's pieces


def _tail(row: Row) -> list[int]:
    """The row's last ids, prompt and new tokens, that a word being written may have begun in."""
    if len(row.tokens) >= _MASK_TAIL:
        return row.tokens[-_MASK_TAIL:]
    return row.prompt[len(row.tokens) - _MASK_TAIL :] + row.tokens
