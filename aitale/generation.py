"""Writing stories with a trained model and the ``generate`` params, seeded and context-safe."""

from __future__ import annotations

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from aitale.modeling.model import model_context
from aitale.params import GenerateParams


def generation_config(params: GenerateParams, tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    return GenerationConfig(
        **params.model_dump(exclude={"seed"}),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


@torch.no_grad()
def continue_text(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    params: GenerateParams,
    seed: int,
) -> str:
    """The model's continuation of ``text``, decoded without special tokens.

    A prompt longer than half the context keeps its last half-context of tokens, and the
    continuation is capped so that prompt plus story fit the model's positions.
    """
    context = model_context(model)
    ids = tokenizer(text, return_tensors="pt").input_ids[:, -(context // 2) :].to(model.device)
    room = context - ids.shape[1]
    config = generation_config(params, tokenizer)
    config.max_new_tokens = min(params.max_new_tokens, room)
    config.min_new_tokens = min(params.min_new_tokens, config.max_new_tokens)
    torch.manual_seed(seed)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
