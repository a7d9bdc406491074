"""Perplexity and bits per byte with a sliding window, for any model that maps ids to logits.

The window moves by ``stride`` tokens and only the tokens new to each window are scored,
each with up to ``context`` tokens of history, as in Hugging Face's perplexity guide.
Bits per byte divides the total negative log-likelihood by the UTF-8 size of the text, so
models with different tokenizers (a 4k scratch BPE, GPT-2's 50k) are comparable.

``logits_fn`` takes a (1, n) LongTensor of ids and returns (1, n, vocab) logits, so the
same code scores PyTorch, TorchScript and onnxruntime models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Score:
    nll: float = 0.0  # summed negative log-likelihood, nats
    tokens: int = 0
    bytes: int = 0

    def __add__(self, other: Score) -> Score:
        return Score(self.nll + other.nll, self.tokens + other.tokens, self.bytes + other.bytes)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else math.nan

    @property
    def bits_per_byte(self) -> float:
        return self.nll / (self.bytes * math.log(2)) if self.bytes else math.nan


@torch.no_grad()
def score_ids(ids: list[int], logits_fn: LogitsFn, context: int, stride: int) -> tuple[float, int]:
    """Summed NLL (nats) of ``ids[1:]`` given their history, and how many tokens were scored."""
    stride = min(stride, context - 1)  # every window must overlap the last, or tokens go unscored
    nll, scored, previous_end = 0.0, 0, 1
    for begin in range(0, max(1, len(ids) - 1), stride):
        end = min(begin + context, len(ids))
        window = torch.tensor([ids[begin:end]], dtype=torch.long)
        logits = logits_fn(window)[0, :-1].float()
        targets = window[0, 1:]
        new = end - previous_end  # tokens not scored by an earlier window
        losses = F.cross_entropy(logits[-new:], targets[-new:], reduction="sum") if new > 0 else torch.tensor(0.0)
        nll += losses.item()
        scored += max(new, 0)
        previous_end = end
        if end == len(ids):
            break
    return nll, scored


def score_texts(
    texts: Iterable[str], encode: Callable[[str], list[int]], logits_fn: LogitsFn, context: int, stride: int
) -> Score:
    """Total score over ``texts``; each text is scored on its own (no cross-story context)."""
    total = Score()
    for text in texts:
        nll, tokens = score_ids(encode(text), logits_fn, context, stride)
        total += Score(nll, tokens, len(text.encode("utf-8")))
    return total


def torch_logits(model: torch.nn.Module) -> LogitsFn:
    model.eval()
    return lambda ids: model(input_ids=ids.to(model.device)).logits.cpu()


@torch.no_grad()
def score_stories(model: torch.nn.Module, tokenizer, records: Iterable[dict]) -> Score:
    """A sequence-to-sequence model's score of each record's story given its request (as the model trains,
    :func:`~aitale.data.structure.request_and_story`): bits per byte of the target alone."""
    from aitale.data.structure import request_and_story

    model.eval()
    total = Score()
    for record in records:
        request, story = request_and_story(record)
        ids = torch.tensor([tokenizer(request, add_special_tokens=False).input_ids])
        labels = tokenizer(story, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        labels = torch.tensor([labels[: model.config.n_positions]])
        loss = model(input_ids=ids.to(model.device), labels=labels.to(model.device)).loss.item()
        total += Score(loss * labels.shape[1], labels.shape[1], len(story.encode("utf-8")))
    return total
