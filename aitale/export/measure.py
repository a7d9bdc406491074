"""The export stage's checks and figures: parity, greedy agreement, bits per byte, speed.

Speed is measured interleaved: every variant holds its own cache, and each timed decoding
step runs every variant once in turn (in a rotating order), so load from other processes
falls on all of them alike and the ratios stay meaningful on a busy machine. Each thread
count (one, and one per core) has its own interleaved pass, since switching torch's pool
between counts at every step would slow torch. Figures are medians over the timed steps.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel

from aitale.evaluation.perplexity import score_texts
from aitale.generation.batch import generate_one
from aitale.generation.decoders import Decoder, full_inputs
from aitale.generation.sampling import GenerationSettings

WARMUP_STEPS = 2  # untimed steps after the prefill: first-call allocations and kernel selection
CORES = torch.get_num_threads()  # torch's default: one thread per core this process may use


class Runner:
    """One variant being timed: a prefill, then one token per call, with its own cache.

    ``threads`` is the compute threads the variant runs with: onnxruntime fixes them per
    session; for torch they are set before each call (torch's pool is process-wide).
    """

    def __init__(self, threads: int):
        self.threads = threads

    def start(self, ids: np.ndarray) -> np.ndarray:  # (batch, n) ids -> (batch, vocab) last logits
        raise NotImplementedError

    def next(self, tokens: np.ndarray) -> np.ndarray:  # (batch,) ids -> (batch, vocab)
        raise NotImplementedError

    def use_threads(self) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


class TorchRunner(Runner):
    """transformers' own model, eager, with its DynamicCache: the baseline."""

    def __init__(self, model: PreTrainedModel, threads: int):
        super().__init__(threads)
        self.model = model.eval()

    @torch.no_grad()
    def start(self, ids: np.ndarray) -> np.ndarray:
        self.use_threads()
        ids = torch.from_numpy(ids)
        self.mask = torch.ones_like(ids)
        out = self.model(
            input_ids=ids, attention_mask=self.mask, cache=DynamicCache(config=self.model.config), use_cache=True
        )
        self.cache = out.cache
        return out.logits[:, -1].numpy()

    @torch.no_grad()
    def next(self, tokens: np.ndarray) -> np.ndarray:
        self.use_threads()
        self.mask = torch.cat([self.mask, torch.ones(self.mask.shape[0], 1, dtype=self.mask.dtype)], dim=1)
        out = self.model(
            input_ids=torch.from_numpy(tokens[:, None]), attention_mask=self.mask, cache=self.cache, use_cache=True
        )
        self.cache = out.cache
        return out.logits[:, -1].numpy()


class DecoderRunner(Runner):
    """An exported decoder (onnxruntime or TorchScript) through its ``step``."""

    def __init__(self, decoder: Decoder, threads: int):
        super().__init__(threads)
        self.decoder = decoder

    def start(self, ids: np.ndarray) -> np.ndarray:
        self.use_threads()
        self.length = ids.shape[1]
        logits, self.cache = self.decoder.step(*full_inputs(ids), self.decoder.empty_cache(ids.shape[0]))
        return logits[:, -1]

    def next(self, tokens: np.ndarray) -> np.ndarray:
        self.use_threads()
        batch = tokens.shape[0]
        self.length += 1
        logits, self.cache = self.decoder.step(
            tokens[:, None].astype(np.int64),
            np.ones((batch, self.length), dtype=np.int64),
            np.full((batch, 1), self.length - 1, dtype=np.int64),
            self.cache,
        )
        return logits[:, -1]


def thread_counts() -> list[int]:
    """The thread counts every variant is timed with: one, and one per core (torch's default)."""
    return sorted({1, CORES})


@dataclass
class Timing:
    prefill: int  # tokens in the cache before the first timed step
    step_seconds: dict[str, list[float]]

    def ms_per_step(self, name: str) -> float:
        return statistics.median(self.step_seconds[name]) * 1000

    def best(self, variant: str) -> tuple[float, int]:
        """The variant's ms per step at its faster thread count, and that count (names ``variant@threads``)."""
        return min(
            (self.ms_per_step(name), int(name.rsplit("@", 1)[1]))
            for name in self.step_seconds
            if name.rsplit("@", 1)[0] == variant
        )

    def variants(self) -> list[str]:
        return sorted({name.rsplit("@", 1)[0] for name in self.step_seconds})


def time_decoding(
    runners: dict[str, Runner], prefill: int, steps: int, batch: int, vocab: int, seed: int = 0
) -> Timing:
    """Prefill ``prefill`` random tokens, then time ``steps`` greedy steps of every runner, interleaved."""
    ids = np.random.default_rng(seed).integers(0, vocab, size=(batch, prefill), dtype=np.int64)
    tokens = {name: runner.start(ids).argmax(-1) for name, runner in runners.items()}
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for step in range(WARMUP_STEPS + steps):
        shift = step % len(names)
        for name in names[shift:] + names[:shift]:
            began = time.perf_counter()
            logits = runners[name].next(tokens[name])
            elapsed = time.perf_counter() - began
            tokens[name] = logits.argmax(-1)
            if step >= WARMUP_STEPS:
                seconds[name].append(elapsed)
    return Timing(prefill, seconds)


def time_by_threads(
    runners: dict[int, dict[str, Runner]], prefill: int, steps: int, batch: int, vocab: int, repeats: int = 1
) -> Timing:
    """:func:`time_decoding` of each thread count's runners in turn, ``repeats`` rounds, pooled.

    Variants are interleaved only with others at the same thread count: switching torch's
    pool between counts at every step would slow torch down. Results are named
    ``variant@threads``; :meth:`Timing.best` picks a variant's faster count.
    """
    seconds: dict[str, list[float]] = {}
    for repeat in range(repeats):
        for threads, group in runners.items():
            torch.set_num_threads(threads)
            timing = time_decoding(group, prefill, steps, batch, vocab, seed=repeat)
            for name, values in timing.step_seconds.items():
                seconds.setdefault(f"{name}@{threads}", []).extend(values)
    torch.set_num_threads(CORES)
    return Timing(prefill, seconds)


def warm_up(runners: dict[int, dict[str, Runner]], context: int, vocab: int) -> None:
    """A few untimed steps of every runner: TorchScript's profiling executor optimises its graph
    only after some calls, and the first calls of every backend allocate."""
    time_by_threads(runners, min(8, context // 2), 4, 1, vocab)


def usable_prefill(context: int, n_positions: int, steps: int) -> int:
    """The requested context, shortened so that the timed steps still fit the model's positions."""
    return max(1, min(context, n_positions - steps - WARMUP_STEPS))


# --- parity ------------------------------------------------------------------------------


@torch.no_grad()
def logit_parity(
    model: PreTrainedModel, decoder: Decoder, seed: int = 0, batch: int = 2, first: int = 12, then: int = 3
) -> dict[str, float]:
    """Max |logit difference| against transformers: from an empty cache, and a step on the cache."""
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, first), generator=generator)
    more = torch.randint(0, vocab, (batch, then), generator=generator)
    reference = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
    mask = torch.ones(batch, first + then, dtype=torch.long)
    reference_next = model(input_ids=more, attention_mask=mask, cache=reference.cache, use_cache=True).logits
    logits, cache = decoder.step(*full_inputs(ids.numpy()), decoder.empty_cache(batch))
    positions = np.broadcast_to(np.arange(first, first + then), (batch, then)).copy()
    logits_next, _ = decoder.step(more.numpy(), mask.numpy(), positions, cache)
    return {
        "no_past": float(np.abs(logits - reference.logits.numpy()).max()),
        "with_past": float(np.abs(logits_next - reference_next.numpy()).max()),
    }


@torch.no_grad()
def seq2seq_parity(
    model: PreTrainedModel,
    decoder: Decoder,
    seed: int = 0,
    batch: int = 2,
    source: int = 9,
    first: int = 6,
    then: int = 3,
) -> dict[str, float]:
    """Max |logit difference| of a T5 decoder against transformers: the first step (encoding a request with
    padding in one row), and steps on its cache (fed with transformers' own next ids)."""
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, source), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, source // 2 :] = 0
    targets = torch.randint(0, vocab, (batch, first + then), generator=generator)
    targets[:, 0] = model.config.decoder_start_token_id
    reference = model(input_ids=ids, attention_mask=mask, decoder_input_ids=targets).logits.numpy()
    logits, cache = decoder.step(ids.numpy(), mask.numpy(), np.zeros_like(ids.numpy()), decoder.empty_cache(batch))
    differences = [float(np.abs(logits[:, 0] - reference[:, 0]).max())]
    for position in range(1, first + then):
        step_mask = np.ones((batch, position + 1), dtype=np.int64)
        logits, cache = decoder.step(targets[:, position : position + 1].numpy(), step_mask, step_mask, cache)
        differences.append(float(np.abs(logits[:, 0] - reference[:, position]).max()))
    return {"no_past": differences[0], "with_past": max(differences[1:])}


@torch.no_grad()
def greedy_reference(
    model: PreTrainedModel, prompts: Sequence[list[int]], params: GenerationSettings
) -> list[list[int]]:
    """transformers' greedy continuations with the same processors as :func:`generate`."""
    out = []
    for ids in prompts:
        tensor = torch.tensor([ids])
        generated = model.generate(
            tensor,
            attention_mask=torch.ones_like(tensor),
            do_sample=False,
            max_new_tokens=params.max_new_tokens,
            min_new_tokens=params.min_new_tokens,
            no_repeat_ngram_size=params.no_repeat_ngram_size,
            repetition_penalty=params.repetition_penalty,
            eos_token_id=model.config.eos_token_id,
            pad_token_id=model.config.pad_token_id,
            temperature=None,
            top_k=None,
            top_p=None,
        )
        start = 1 if model.config.is_encoder_decoder else len(ids)  # after T5's decoder start token
        out.append(generated[0, start:].tolist())
    return out


def greedy_agreement(
    decoder: Decoder, prompts: Sequence[list[int]], references: Sequence[list[int]], params: GenerationSettings
) -> dict[str, float | int]:
    """Share of greedy tokens equal to transformers' at the same position, and prompts matched whole."""
    equal = total = identical = 0
    for ids, reference in zip(prompts, references):
        tokens = generate_one(decoder, ids, params.but(do_sample=False))
        equal += sum(a == b for a, b in zip(tokens, reference))
        total += max(len(tokens), len(reference))
        identical += tokens == reference
    return {
        "token_agreement": round(equal / total, 4) if total else 1.0,
        "identical": identical,
        "prompts": len(prompts),
    }


# --- bits per byte -----------------------------------------------------------------------


def bits_per_byte(
    texts: Sequence[str], encode: Callable[[str], list[int]], logits_fn: Callable, context: int, stride: int
) -> float:
    return score_texts(texts, encode, logits_fn, context, stride).bits_per_byte
