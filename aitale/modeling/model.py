"""Building the causal LM: a small GPT-2 from params, or a pretrained base with new tokens."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel, PreTrainedTokenizerBase

from aitale.params import ModelParams


def build_model(params: ModelParams, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    if params.scratch:
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=params.context,
            n_layer=params.n_layer,
            n_head=params.n_head,
            n_embd=params.n_embd,
            resid_pdrop=params.dropout,
            embd_pdrop=params.dropout,
            attn_pdrop=params.dropout,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return GPT2LMHeadModel(config)
    model = AutoModelForCausalLM.from_pretrained(params.base)
    # The structure and pad tokens are new rows; mean-initialised so they start as "average" tokens.
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def model_context(model: PreTrainedModel) -> int:
    config = model.config
    return int(getattr(config, "n_positions", None) or config.max_position_embeddings)
