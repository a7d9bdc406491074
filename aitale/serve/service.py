"""One served model: its verified ONNX decoder, tokenizer, defaults, content screen and engine.

:meth:`Service.write` is the text path of every request: the request's row joins the engine's
batch, tokens come back as they are written, and text is released only in whole sentences that
the content screen has passed for the request's age group, then the whole text is screened once
more at the end. Nothing unscreened leaves this module.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aitale.generation.batch import CANCELLED, STOP, Row
from aitale.generation.codec import Codec
from aitale.generation.config import default_settings
from aitale.generation.decoders import VARIANT_FILES, OnnxDecoder, full_inputs, weights_sha256
from aitale.generation.sampling import GenerationSettings
from aitale.generation.story import finish, sentence_end
from aitale.generation.writer import Screened
from aitale.io import file_sha256
from aitale.safety.mask import AgeMasks, token_texts
from aitale.serve.engine import QUEUE_TIMEOUT, TIMEOUT, Engine, Job
from aitale.serve.metrics import Metrics
from aitale.serve.settings import ServeSettings

log = logging.getLogger(__name__)

CONTENT_FILTER = "content_filter"  # OpenAI's finish_reason for withheld text
REPEATABLE, FAST = "onnx", "onnx-int8"  # the variants ``auto`` serves seeded and unseeded requests with


class ServiceError(Exception):
    """A request the engine could not serve: ``status`` is the HTTP status, ``code`` OpenAI's error code."""

    def __init__(self, status: int, code: str, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


@dataclass
class _Timing:
    arrived: float  # time.monotonic() of the request's arrival
    last: float | None = None  # ... and of its latest tokens


class Service:
    """``variant: auto`` runs two engines: fp32 for requests that must be repeatable (a seed given, or greedy),
    where a row's tokens never depend on the rows beside it, and dynamic INT8 for unseeded sampled requests,
    which are faster on it and promise no repetition anyway (INT8's activation scales are taken over the
    whole batch, so its rows are not independent: see the README's determinism contract)."""

    def __init__(self, settings: ServeSettings, metrics: Metrics):
        from aitale.safety import load_screen

        self.settings, self.metrics = settings, metrics
        folder = settings.model_dir
        variants = (REPEATABLE, FAST) if settings.variant == "auto" else (settings.variant,)
        self.codec = Codec(folder)
        self.defaults = default_settings(folder)
        self.screen = load_screen(settings.screen_dir)
        # the second line of defence: the words the age group's policy never allows are never written
        self.masks = AgeMasks(token_texts(self.codec.tokenizer), self.screen.rules)
        self.screen_sha256 = _folder_digest(settings.screen_dir)
        self.version = model_version(settings.model_name)
        self.engines: dict[str, Engine] = {}
        self.sha256s: dict[str, str] = {}
        for variant in variants:
            # OnnxDecoder checks each file's size and sha256 against the export manifest
            decoder = OnnxDecoder(folder / VARIANT_FILES[variant], settings.threads)
            if settings.warmup:  # the first run of a session allocates and picks kernels
                ids = np.array([self.codec.encode("Once upon a time") or [0]], dtype=np.int64)
                decoder.step(*full_inputs(ids), decoder.empty_cache(1))
            self.context = decoder.context
            self.sha256s[variant] = weights_sha256(folder, variant)
            self.engines[variant] = Engine(
                decoder,
                eos_token_id=decoder.eos_token_id,
                decode=self.codec.decode,
                max_batch=settings.max_batch,
                token_budget=settings.token_budget,
                gather_s=settings.gather_ms / 1000,
                observe=metrics,
            )
        self.sha256 = self.sha256s[variants[0]]  # the file repeatable requests, and so the cache, depend on
        for engine in self.engines.values():
            engine.start()

    def close(self) -> None:
        for engine in self.engines.values():
            engine.stop()

    def engine_for(self, repeatable: bool) -> Engine:
        return self.engines.get(REPEATABLE if repeatable else FAST) or next(iter(self.engines.values()))

    def info(self) -> dict[str, Any]:
        return {
            "id": self.settings.model_name,
            "object": "model",
            "created": 0,
            "owned_by": "ai-tale",
            "version": self.version,
            "sha256": self.sha256,
            "variant": self.settings.variant,
            "files": self.sha256s,
            "context": self.context,
            "generation_defaults": self.defaults.to_json(),
        }

    def room(self, prompt_ids: list[int]) -> int | None:
        """The new tokens the context leaves after a prompt (None: no limit)."""
        return None if self.context is None else self.context - len(prompt_ids)

    async def write(
        self,
        prompt_ids: list[int],
        settings: GenerationSettings,
        *,
        age_group: str,
        story: bool,
        deadline: float,
        repeatable: bool,
        release: Callable[[str], Awaitable[None]] | None = None,
        shown: Callable[[str], str] = str,
    ) -> Screened:
        """The screened text of one row; ``release`` receives each newly screened piece (streaming).

        ``repeatable``: the request gave its seed (or decodes greedily), so it runs where its tokens
        cannot depend on the rows beside it. ``shown(text)`` is what a reader sees with the text (the
        prompt before a completion, the title above a story): what the screen judges, at every release
        and at the end.
        """
        decode = self.codec.decode_story if story else self.codec.decode
        engine, timing = self.engine_for(repeatable), _Timing(time.monotonic())
        job = self._submit(engine, prompt_ids, settings, deadline, timing.arrived)
        job.mask = self.masks.for_age(age_group)
        released = _Released(self, decode, age_group, release, shown) if release is not None else None
        tokens: list[int] = []
        row: Row | None = None
        try:
            async with asyncio.timeout_at(deadline + 1.0):  # the engine ends it at the deadline; this, if it cannot
                while row is None:
                    kind, value = await self._event(job, timing)
                    if kind == "tokens":
                        tokens += value
                        if released is not None and (unsafe := await released.more(tokens, value)) is not None:
                            engine.cancel(job)
                            return Screened("", tokens, len(job.prompt), CONTENT_FILTER, False, unsafe)
                    elif kind == "end":
                        row = value
                    else:
                        raise _error(value)
        except TimeoutError:
            raise ServiceError(504, "timeout", "the story took longer than the server allows") from None
        finally:
            if row is None:
                engine.cancel(job)  # the client went away, or the request failed: free the row now
            self.refresh_gauges()
        text = row.stop_text if row.stop_text is not None else decode(row.tokens)
        text = finish(text, row.finish_reason == STOP) if story else text
        verdict = self.judge(shown(text), age_group)
        if not verdict["safe"]:
            return Screened("", row.tokens, len(row.prompt), CONTENT_FILTER, False, verdict)
        if released is not None:
            await released.rest(text)
        return Screened(text, row.tokens, len(row.prompt), row.finish_reason, True, verdict)

    def _submit(
        self, engine: Engine, prompt_ids: list[int], settings: GenerationSettings, deadline: float, arrived: float
    ) -> Job:
        job = Job(
            list(prompt_ids),
            settings,
            deadline=deadline,
            loop=asyncio.get_running_loop(),
            queue_deadline=min(deadline, arrived + self.settings.queue_timeout_s),
        )
        engine.submit(job)
        self.refresh_gauges()
        return job

    async def _event(self, job: Job, timing: _Timing) -> tuple[str, Any]:
        """The job's next event; new tokens are counted and timed."""
        kind, value = await job.events.get()
        if kind == "tokens":
            now = time.monotonic()
            if timing.last is None:
                self.metrics.ttft.observe(now - timing.arrived)
            else:
                self.metrics.inter_token.observe((now - timing.last) / len(value))
            timing.last = now
            self.metrics.tokens.inc(len(value))
        return kind, value

    def judge(self, text: str, age_group: str) -> dict[str, Any]:
        verdict = self.screen.judge(text, age_group).to_json()
        self.metrics.screened.labels("safe" if verdict["safe"] else "unsafe").inc()
        return verdict

    def refresh_gauges(self) -> None:
        self.metrics.running.set(sum(e.running for e in self.engines.values()))
        self.metrics.waiting.set(sum(e.waiting for e in self.engines.values()))


class _Released:
    """A streamed row's text, released in whole sentences once the content screen has passed them."""

    def __init__(
        self,
        service: Service,
        decode,
        age_group: str,
        release: Callable[[str], Awaitable[None]],
        shown: Callable[[str], str],
    ):
        self.service, self.decode, self.age_group, self.release = service, decode, age_group, release
        self.shown = shown
        self.released = 0  # characters of the text already released
        self.marked = False  # a sentence mark came since the last release: a sentence may have ended

    async def more(self, tokens: list[int], new: list[int]) -> dict[str, Any] | None:
        """Release the sentences the tokens so far complete (``new`` the latest of them); returns the verdict
        if they fail the screen. The whole text is decoded only once a sentence mark has come."""
        self.marked = self.marked or any(mark in self.service.codec.decode(new) for mark in ".!?")
        if not self.marked:
            return None
        text = self.decode(tokens)
        cut = sentence_end(text, written=False)
        if cut > self.released:
            verdict = self.service.judge(self.shown(text[:cut]), self.age_group)
            if not verdict["safe"]:
                return verdict
            await self.release(text[self.released : cut])
            self.released = cut
            self.marked = any(mark in text[cut:] for mark in ".!?")
        return None

    async def rest(self, text: str) -> None:
        """Release what is left of the finished text (screened whole)."""
        if len(text) > self.released:
            await self.release(text[self.released :])


def _error(reason) -> ServiceError:
    if reason == TIMEOUT:
        return ServiceError(504, "timeout", "the story took longer than the server allows")
    if reason == QUEUE_TIMEOUT:
        return ServiceError(503, "overloaded", "the server is busy: no batch row came free in time; retry later")
    if reason == CANCELLED:
        return ServiceError(499, "cancelled", "the request was cancelled")
    log.error("generation failed: %s", type(reason).__name__)
    return ServiceError(500, "server_error", "the model failed while writing; the request was not completed")


def _folder_digest(folder: Path) -> str:
    """One sha256 over a folder's files (the content screen's bundle), for cache keys."""
    entries = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    lines = "\n".join(f"{p.relative_to(folder)}:{file_sha256(p)}" for p in entries)
    return hashlib.sha256(lines.encode()).hexdigest()


def model_version(name: str) -> str | None:
    """The model's version: ``AITALE_SERVE_MODEL_VERSION``, else the gto tag (``name@vX``) at HEAD, else None."""
    if version := os.environ.get("AITALE_SERVE_MODEL_VERSION"):
        return version
    try:
        tags = subprocess.run(
            ["git", "tag", "--points-at", "HEAD", "--list", f"{name}@*"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sorted(tags)[-1].split("@", 1)[1] if tags else None
