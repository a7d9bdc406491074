"""The tokenizer: byte-level BPE learned from the train split, or a pretrained base's own.

Either way the structure tokens are special tokens (never split, never merged) and there
is a pad token, so batched generation and the evaluation stage work the same for both.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import ByteLevelBPETokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from aitale.data.structure import END_OF_TEXT, SPECIAL_TOKENS
from aitale.params import ModelParams

PAD = "<|pad|>"


def build_tokenizer(params: ModelParams, texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Learn a tokenizer from ``texts`` (scratch) or extend the base's (pretrained)."""
    return train_bpe(texts, params.vocab_size, params.context) if params.scratch else extend_base(params.base)


def train_bpe(texts: Iterable[str], vocab_size: int, context: int) -> PreTrainedTokenizerFast:
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[*SPECIAL_TOKENS, PAD], show_progress=False
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=PAD,
        model_max_length=context,
    )


def extend_base(base: str) -> PreTrainedTokenizerFast:
    """The base's tokenizer with the structure tokens, and a pad token where it has none (GPT-2; T5 keeps its
    own, which is also its decoder's start token)."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    added = {"additional_special_tokens": [t for t in SPECIAL_TOKENS if t != tokenizer.eos_token]}
    tokenizer.add_special_tokens(added if tokenizer.pad_token is not None else {"pad_token": PAD, **added})
    return tokenizer
