"""The server's settings: each one a flag of ``python -m aitale.serve`` and an ``AITALE_SERVE_*`` variable.

A flag wins over the environment, the environment over the default. The descriptions here are the
``--help`` text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aitale.generation.story import MAX_REDRAWS, REDRAWS
from aitale.labels import AGE_GROUPS
from aitale.serve.security import read_keys


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AITALE_SERVE_", extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on (0: any free port)")
    model_dir: Path = Field(Path("models/onnx"), description="the export stage's folder (ONNX, tokenizer, manifest)")
    model_name: str = Field("storyteller", min_length=1, description="the model's id in the API")
    variant: Literal["auto", "onnx", "onnx-int8"] = Field(
        "auto",
        description="which exported file runs: auto = fp32 for seeded and greedy requests (the same tokens "
        "alone or in any batch), INT8 for the others (faster, not batch-invariant); or one of the two for all",
    )
    screen_dir: Path = Field(Path("models/safety"), description="the content screen's folder")
    threads: PositiveInt | None = Field(None, description="onnxruntime compute threads (default: one per core)")
    max_batch: PositiveInt = Field(8, le=256, description="rows in the running batch; 1 turns batching off")
    token_budget: PositiveInt = Field(8192, description="prompt + new tokens of all running rows, at most")
    gather_ms: float = Field(5.0, ge=0, le=1000, description="how long an idle engine waits to gather arrivals")
    max_in_flight: PositiveInt = Field(64, description="requests being served at once; more get 429")
    queue_timeout_s: PositiveFloat = Field(30.0, description="a request waiting this long for a batch row gets 503")
    request_timeout_s: PositiveFloat = Field(120.0, description="a request running past this gets 504")
    read_timeout_s: PositiveFloat = Field(
        10.0,
        description="a connection whose request head stalls this long is closed; a body that stalls this long "
        "gets 408 (so SIGTERM's drain never waits on a stalled upload)",
    )
    max_body_bytes: PositiveInt = Field(65536, description="larger request bodies get 413")
    cache_entries: int = Field(1024, ge=0, description="responses kept by the cache (0 turns it off)")
    cache_ttl_s: PositiveFloat = Field(3600.0, description="a cached response expires after this many seconds")
    redraws: int = Field(
        REDRAWS, ge=0, le=MAX_REDRAWS, description="new draws of a story that fails the content screen"
    )
    completions_age_group: Literal[AGE_GROUPS] = Field(  # type: ignore[valid-type]
        "3-5", description="the age policy /v1/completions text is screened with"
    )
    warmup: bool = Field(True, description="run one decoding step before /ready turns 200")
    api_keys: str = Field(
        "", description="comma-separated API keys; with any key set, /v1/* wants 'Authorization: Bearer <key>'"
    )
    api_keys_file: Path | None = Field(None, description="a file of API keys, one per line")
    allow_public_without_keys: bool = Field(
        False,
        description="let a server without API keys listen on an address other than loopback (off: it refuses to start)",
    )
    key_rate_per_minute: PositiveFloat = Field(
        120.0,
        description="requests per minute a key may make, cache hits included. The key limits hold for API keys "
        "and for a keyless server on another address; a keyless server on loopback (the default) has none: "
        "every caller there is this machine, so a load test from it measures the engine (max_in_flight still holds)",
    )
    key_burst: PositiveInt = Field(20, description="requests a key may make at once after a quiet spell")
    key_in_flight: PositiveInt = Field(16, description="requests of one key being served at once")
    share_cache: bool = Field(False, description="let callers with different keys share cached responses")
    metrics_public: bool = Field(False, description="serve /metrics to any address, not only to loopback")
    cors_origins: str = Field(
        "", description="comma-separated origins whose pages may call the API (none: only the server's own page)"
    )
    log_text: bool = Field(
        False, description="debugging only: log prompts and stories (they can hold children's names); off by default"
    )

    @model_validator(mode="after")
    def _budget(self) -> ServeSettings:
        if self.token_budget < 16:
            raise ValueError("token_budget must allow at least 16 tokens")
        return self

    def keys(self) -> list[str]:
        return read_keys(self.api_keys, self.api_keys_file)

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
