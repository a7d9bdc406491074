"""The ``generate`` params as a model's ``generation_config.json``, and back as sampling settings."""

from __future__ import annotations

import json
from pathlib import Path

from aitale.generation.sampling import GenerationSettings
from aitale.params import GenerateParams

CONFIG_FILE = "generation_config.json"


def generation_config(params: GenerateParams, tokenizer, decoder_start_token_id: int | None = None):
    """transformers' ``GenerationConfig`` of the params, with the tokenizer's special ids (and, for a
    sequence-to-sequence model, the decoder's start token it was trained with: without it ``generate``
    would start from the bos token)."""
    from transformers import GenerationConfig

    start = {} if decoder_start_token_id is None else {"decoder_start_token_id": decoder_start_token_id}
    return GenerationConfig(
        **params.model_dump(exclude={"seed"}),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **start,
    )


def default_settings(folder: str | Path, seed: int = 0) -> GenerationSettings:
    """The settings a model folder's ``generation_config.json`` gives (the defaults of a request)."""
    path = Path(folder) / CONFIG_FILE
    values = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    known = {name: values[name] for name in GenerationSettings.__dataclass_fields__ if values.get(name) is not None}
    return GenerationSettings(**{**known, "seed": seed})
