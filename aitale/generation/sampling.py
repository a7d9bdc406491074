"""Per-row sampling settings and the logits processors, in the order transformers applies them.

Greedy decoding with these processors is token for token that of ``model.generate(do_sample=False)``
with the same settings, and the sampling warpers give the same distribution as transformers'
(``tests/test_export.py`` pins both to transformers).
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
