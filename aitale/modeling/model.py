"""Building the model: a small GPT-2 from params, or a pretrained base with new tokens.

A pretrained base is a causal LM (GPT-2, GPT-Neo) or a sequence-to-sequence model (T5), told
apart by its config (``is_encoder_decoder``); :func:`load_trained` loads either kind back.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from aitale.params import ModelParams

ACTIVATION = "gelu_pytorch_tanh"  # F.gelu(approximate="tanh"): GPT-2's gelu_new in one fused op


def gpt2_config(
    *,
    vocab_size: int,
    context: int,
    n_layer: int,
    n_head: int,
    n_embd: int,
    dropout: float,
    attn_dropout: float,
    bos_token_id: int | None,
    eos_token_id: int | None,
    pad_token_id: int | None,
) -> GPT2Config:
    """A GPT-2 of the given shape: one dropout rate for embeddings and residuals, another for attention.

    The tanh GELU is PyTorch's one fused op (the same function as GPT-2's ``gelu_new``, written
    there as five), and attention is transformers' eager matmuls: at this size, on CPU in bf16,
    they train faster than SDPA's kernel. benchmarks/train_speed.py measured both. A saved model
    loads with transformers' default attention again (the choice is not written to config.json).
    """
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=context,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=attn_dropout,
        activation_function=ACTIVATION,
        attn_implementation="eager",  # x1.18 over SDPA in benchmarks/train_speed (2026-12-02)
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def build_model(params: ModelParams, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    if params.scratch:
        return GPT2LMHeadModel(
            gpt2_config(
                vocab_size=len(tokenizer),
                context=params.context,
                n_layer=params.n_layer,
                n_head=params.n_head,
                n_embd=params.n_embd,
                dropout=params.dropout,
                attn_dropout=params.attn_dropout,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    model = auto_class(params.base).from_pretrained(params.base)
    # The structure and pad tokens are new rows; mean-initialised so they start as "average" tokens.
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def model_context(model: PreTrainedModel) -> int:
    config = model.config
    return int(getattr(config, "n_positions", None) or config.max_position_embeddings)


def is_seq2seq(base: str | Path) -> bool:
    """Whether a hub name or model folder is an encoder-decoder (T5) rather than a causal LM."""
    return bool(AutoConfig.from_pretrained(base).is_encoder_decoder)


def auto_class(base: str | Path):
    return AutoModelForSeq2SeqLM if is_seq2seq(base) else AutoModelForCausalLM


def load_trained(folder: str | Path) -> PreTrainedModel:
    """A saved model of either kind, in eval mode."""
    return auto_class(folder).from_pretrained(folder).eval()
