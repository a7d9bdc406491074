"""Per-row sampling settings and the logits processors, in the order transformers applies them.

Greedy decoding with these processors is token for token that of ``model.generate(do_sample=False)``
with the same settings, and the sampling warpers give the same distribution as transformers'
(``tests/test_export.py`` pins both to transformers). :func:`process` and :func:`choose` take one
row; :func:`next_tokens`, what the batch loop runs, takes every row of a step at once and picks the
same tokens (``tests/test_sampling_rows.py`` pins it to them), with each row's ids kept in a
:class:`History` rather than copied at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

# Sampling below this temperature is greedy but for ties closer than it, and the float32 scores divided by
# it overflow (a temperature under about 1e-38 is 0 in float32): such a row decodes greedily.
MIN_SAMPLING_TEMPERATURE = 1e-6


@dataclass(frozen=True)
class GenerationSettings:
    """How one row is decoded; every request in a batch may have its own."""

    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0
    max_new_tokens: int = 64
    seed: int = 0
    stop: tuple[str, ...] = ()  # stop strings: the row ends once its text contains one (not included)

    @classmethod
    def from_params(cls, params, **changes) -> GenerationSettings:
        """From a ``GenerateParams`` section (or anything with the same fields), with ``changes`` applied.

        A field given in ``changes`` is not read from ``params`` (dvc.yaml lists the keys a stage reads)."""
        names = [name for name in cls.__dataclass_fields__ if name not in changes]
        values = {name: getattr(params, name) for name in names if hasattr(params, name)}
        return cls(**{**values, **changes})

    @property
    def samples(self) -> bool:
        """Whether the row draws its tokens (else it takes the argmax): ``do_sample`` at a usable temperature."""
        return self.do_sample and self.temperature >= MIN_SAMPLING_TEMPERATURE

    def but(self, **changes) -> GenerationSettings:
        return replace(self, **changes)

    def within(self, room: int | None) -> GenerationSettings:
        """At most ``room`` new tokens (what the context leaves after the prompt; None: no limit), and
        ``min_new_tokens`` no more than that."""
        limit = self.max_new_tokens if room is None else min(self.max_new_tokens, room)
        return replace(self, max_new_tokens=limit, min_new_tokens=min(self.min_new_tokens, limit))

    def to_json(self) -> dict:
        return asdict(self)

    def transformers_options(self) -> dict:
        """The same settings as keyword arguments of transformers' ``generate`` (the seed and stop strings aside)."""
        return {name: value for name, value in asdict(self).items() if name not in ("seed", "stop")}


def process(
    scores: np.ndarray, ids: Sequence[int], generated: int, settings: GenerationSettings, eos: int | None
) -> np.ndarray:
    """The scores of the next token after ``ids`` with ``generated`` tokens written so far.

    Penalties and bans first (repetition penalty, no-repeat n-grams, end-of-text held back until
    ``min_new_tokens``), then, when sampling, temperature, top-k and top-p.
    """
    scores = scores.astype(np.float32, copy=True)
    if settings.repetition_penalty != 1.0:
        seen = np.unique(np.asarray(ids))
        picked = scores[seen]
        scores[seen] = np.where(picked < 0, picked * settings.repetition_penalty, picked / settings.repetition_penalty)
    if settings.no_repeat_ngram_size:
        scores[banned_ngram_tokens(ids, settings.no_repeat_ngram_size)] = -np.inf
    if eos is not None and generated < settings.min_new_tokens:
        scores[eos] = -np.inf
    if not settings.samples:
        return scores
    scores = scores / np.float32(settings.temperature)
    if 0 < settings.top_k < scores.size:
        kth = np.partition(scores, -settings.top_k)[-settings.top_k]
        scores[scores < kth] = -np.inf
    if settings.top_p < 1.0:
        order = np.argsort(scores, kind="stable")  # ascending, as transformers' TopPLogitsWarper
        cumulative = np.cumsum(softmax(scores[order]))
        remove = cumulative <= (1 - settings.top_p)
        remove[-1] = False  # always keep the likeliest token
        scores[order[remove]] = -np.inf
    return scores


def masked(scores: np.ndarray, banned: np.ndarray | None) -> np.ndarray:
    """``scores`` with the ``banned`` tokens (one flag per token id, e.g. an age group's never-allowed words:
    :mod:`aitale.safety.mask`) made impossible; ids past the flags (a model's padded vocabulary) stay allowed."""
    if banned is None or not banned.any():
        return scores
    out = np.array(scores, dtype=np.float32, copy=True)
    flags = banned[: out.size]
    out[: flags.size][flags] = -np.inf
    return out


def choose(scores: np.ndarray, settings: GenerationSettings, rng: np.random.Generator) -> int:
    """The next token: the argmax when greedy, else a draw from ``rng``."""
    return sample(scores, rng) if settings.samples else int(np.argmax(scores))


def banned_ngram_tokens(ids: Sequence[int], n: int) -> list[int]:
    """Tokens that would repeat an n-gram already in ``ids`` (prompt and continuation)."""
    if len(ids) + 1 < n:
        return []
    prefix = tuple(ids[len(ids) - n + 1 :]) if n > 1 else ()
    return [ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i : i + n - 1]) == prefix]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


def sample(scores: np.ndarray, rng: np.random.Generator) -> int:
    cumulative = np.cumsum(softmax(scores.astype(np.float64)))
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), scores.size - 1))


class History:
    """What the repetition rules read of a row's ids (its prompt and new tokens), kept up to date token by
    token instead of rebuilt from the whole history at every step: the tokens that followed each
    (n-1)-gram (no-repeat n-grams) and the ids seen (repetition penalty)."""

    def __init__(self, ids: Sequence[int], settings: GenerationSettings):
        self.n = settings.no_repeat_ngram_size
        self.length = 0
        self.tail: tuple[int, ...] = ()
        self.follows: dict[tuple[int, ...], list[int]] = {}
        self.seen: set[int] | None = set() if settings.repetition_penalty != 1.0 else None
        self._seen_ids: np.ndarray | None = None
        for token in ids:
            self.add(token)

    def add(self, token: int) -> None:
        if self.n:
            if self.length >= self.n - 1:
                self.follows.setdefault(self.tail, []).append(token)
            longer = (*self.tail, token)
            self.tail = longer[max(0, len(longer) - (self.n - 1)) :] if self.n > 1 else ()
        if self.seen is not None and token not in self.seen:
            self.seen.add(token)
            self._seen_ids = None
        self.length += 1

    def banned(self) -> list[int]:
        """As :func:`banned_ngram_tokens` of the whole history."""
        if not self.n or self.length + 1 < self.n:
            return []
        return self.follows.get(self.tail, [])

    def seen_ids(self) -> np.ndarray:
        if self._seen_ids is None:
            self._seen_ids = np.fromiter(sorted(self.seen or ()), dtype=np.int64)
        return self._seen_ids


def next_tokens(
    logits: np.ndarray,
    settings: Sequence[GenerationSettings],
    histories: Sequence[History],
    generated: Sequence[int],
    rngs: Sequence[np.random.Generator],
    eos: int | None,
) -> list[int]:
    """The next token of every row of ``logits`` (rows, vocab): the tokens :func:`process` and :func:`choose`
    pick row by row, bit for bit, without their whole-vocabulary sorts (see :func:`_draw`)."""
    scores = logits.astype(np.float32, copy=True)
    for i, (row, history) in enumerate(zip(settings, histories)):  # what depends on each row's ids
        if row.repetition_penalty != 1.0:
            seen = history.seen_ids()
            picked = scores[i, seen]
            penalty = row.repetition_penalty
            scores[i, seen] = np.where(picked < 0, picked * penalty, picked / penalty)
        if row.no_repeat_ngram_size:
            scores[i, history.banned()] = -np.inf
        if eos is not None and generated[i] < row.min_new_tokens:
            scores[i, eos] = -np.inf
    chosen = np.argmax(scores, axis=1)
    drawn = np.array([i for i, row in enumerate(settings) if row.samples], dtype=np.int64)
    if drawn.size:
        temperatures = np.array([settings[i].temperature for i in drawn], dtype=np.float32)
        warped = scores[drawn] / temperatures[:, None]
        floors = _top_k_floors(warped, [settings[i].top_k for i in drawn])
        kept = (warped >= floors[:, None]) & (warped > -np.inf)
        counts = kept.sum(axis=1)
        for count in np.unique(counts):  # rows keeping as many tokens draw together
            rows = np.flatnonzero(counts == count)
            top_p = np.array([settings[drawn[r]].top_p for r in rows])
            chosen[drawn[rows]] = _draw(warped[rows], kept[rows], int(count), top_p, [rngs[drawn[r]] for r in rows])
    return chosen.tolist()


def _top_k_floors(scores: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """Each row's k-th largest score, the least that top-k keeps (-inf where top-k keeps everything)."""
    floors = np.full(len(ks), -np.inf, dtype=np.float32)
    vocab = scores.shape[1]
    for k in sorted(set(ks)):
        if 0 < k < vocab:
            rows = [i for i, each in enumerate(ks) if each == k]
            floors[rows] = np.partition(scores[rows], -k, axis=1)[:, -k]
    return floors


def _draw(
    scores: np.ndarray, kept: np.ndarray, count: int, top_p: np.ndarray, rngs: Sequence[np.random.Generator]
) -> np.ndarray:
    """The tokens :func:`process` and :func:`sample` pick after temperature, for rows whose top-k keeps ``count``
    tokens each (``kept``, a mask), computed on the kept tokens only.

    A token a warper removes holds exactly 0 after the exponential, so every sum and cumulative sum over the
    vocabulary is computed with the kept values in their places and zeros elsewhere: the same numbers added
    in the same order as over the whole vocabulary, at the cost of sorting the kept tokens rather than all."""
    rows, vocab = scores.shape
    at = np.nonzero(kept)[1].reshape(rows, count)  # each row's kept tokens, in vocabulary order
    values = np.take_along_axis(scores, at, axis=1)
    highest = values.max(axis=1, keepdims=True)
    survive = np.ones_like(values, dtype=bool)
    nucleus = np.flatnonzero(top_p < 1.0)
    if nucleus.size:
        order = np.argsort(values[nucleus], axis=1, kind="stable")  # ascending, as transformers' TopPLogitsWarper
        shifted = np.zeros((nucleus.size, vocab), dtype=np.float32)
        ascending = np.take_along_axis(values[nucleus], order, axis=1)
        shifted[:, vocab - count :] = np.exp(ascending - highest[nucleus])
        cumulative = np.cumsum(shifted[:, vocab - count :] / shifted.sum(axis=1, keepdims=True), axis=1)
        remove = cumulative <= (1 - top_p[nucleus]).astype(np.float32)[:, None]
        remove[:, -1] = False  # always keep the likeliest token
        survive[nucleus] = np.take_along_axis(~remove, np.argsort(order, axis=1), axis=1)
    wide = np.zeros((rows, vocab))
    exps = np.where(survive, np.exp(values.astype(np.float64) - highest.astype(np.float64)), 0.0)
    np.put_along_axis(wide, at, exps, axis=1)
    cumulative = np.cumsum(exps / wide.sum(axis=1, keepdims=True), axis=1)
    targets = np.array([rng.random() for rng in rngs]) * cumulative[:, -1]
    past = cumulative > targets[:, None]
    return np.where(past.any(axis=1), at[np.arange(rows), past.argmax(axis=1)], vocab - 1)
