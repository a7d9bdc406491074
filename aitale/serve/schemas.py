"""The body of ``POST /v1/completions``: OpenAI's completions shape, plus this model's sampling controls.

Fields left out take the model's ``generation_config.json``. ``temperature: 0`` decodes greedily.
Unknown fields are refused, so a misspelt setting is an error rather than silently ignored; types are
strict, as OpenAI's are (``"seed": "7"`` or ``"stream": 1`` is an error, an integer temperature is fine);
text must be Unicode (a lone surrogate is refused, naming the field).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aitale.data.text import unicode_text
from aitale.generation.sampling import GenerationSettings

MAX_PROMPTS = 8


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1)
    prompt: str | list[str] = Field(description=f"a prompt, or a list of up to {MAX_PROMPTS}")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    seed: int | None = Field(None, ge=0, lt=2**63)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: Literal[1] = 1
    user: str | None = Field(None, max_length=256)  # accepted as OpenAI's clients send it; never stored or logged
    no_repeat_ngram_size: int | None = Field(None, ge=0, le=16)
    repetition_penalty: float | None = Field(None, ge=1, le=10)
    min_tokens: int | None = Field(None, ge=0)

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, prompt: str | list[str]) -> str | list[str]:
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not 1 <= len(prompts) <= MAX_PROMPTS:
            raise ValueError(f"give 1 to {MAX_PROMPTS} prompts")
        if any(not p for p in prompts):
            raise ValueError("a prompt must not be empty")
        for p in prompts:
            unicode_text(p)
        return prompt

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("give up to 4 non-empty stop strings")
        for s in stops:
            unicode_text(s)
        return stop

    def settings(self, defaults: GenerationSettings, room: int) -> GenerationSettings:
        """The row's settings: the request's fields over the model's defaults, within ``room`` new tokens."""
        changes: dict[str, Any] = {}
        if self.temperature is not None:
            changes["do_sample"] = self.temperature > 0
            if self.temperature > 0:
                changes["temperature"] = float(self.temperature)
        for ours, theirs in (
            ("top_p", "top_p"),
            ("top_k", "top_k"),
            ("max_new_tokens", "max_tokens"),
            ("min_new_tokens", "min_tokens"),
            ("no_repeat_ngram_size", "no_repeat_ngram_size"),
            ("repetition_penalty", "repetition_penalty"),
        ):
            if getattr(self, theirs) is not None:
                changes[ours] = getattr(self, theirs)
        if self.stop is not None:
            changes["stop"] = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return defaults.but(**changes).within(room)

    def cache_fields(self) -> dict[str, Any]:
        """Every field that changes the output (not ``stream``, ``user`` or ``stream_options``)."""
        return self.model_dump(exclude={"stream", "stream_options", "user"})
