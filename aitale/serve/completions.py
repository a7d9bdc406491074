"""``POST /v1/completions``: OpenAI's completions, each prompt a row of the running batch, screened as it is written."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aitale.data.structure import as_text
from aitale.generation.sampling import GenerationSettings
from aitale.generation.story import SEED_RANGE
from aitale.generation.writer import Screened
from aitale.serve.answers import Answer, Emit, past_context, respond
from aitale.serve.schemas import CompletionRequest
from aitale.serve.service import ServiceError
from aitale.serve.state import Server

router = APIRouter()


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request, server: Server) -> Response:
    s = server.service
    if body.model != server.settings.model_name:
        raise ServiceError(404, "model_not_found", f"the model {body.model!r} does not exist")
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    seed = body.seed if body.seed is not None else secrets.randbelow(SEED_RANGE)
    asked = body.settings(s.defaults.but(seed=seed), None)
    cacheable = body.seed is not None or not asked.samples
    fields = {"route": "completions", **body.cache_fields(), "seed": body.seed}
    base = {
        "id": "cmpl-" + uuid.uuid4().hex[:24],
        "object": "text_completion",
        "created": int(time.time()),
        "model": server.settings.model_name,
    }
    deadline = time.monotonic() + server.settings.request_timeout_s
    rows: list[tuple[list[int], GenerationSettings]] = []

    def prepare() -> Response | None:
        # a typed "<|endoftext|>" is text here too, never a control token
        encoded = [s.codec.encode(as_text(p)) for p in prompts]
        if (too_long := too_long_for_context(body, encoded, s.context)) is not None:
            return too_long
        rows.extend((ids, body.settings(s.defaults.but(seed=seed), s.room(ids))) for ids in encoded)
        return None

    async def produce(emit: Emit | None) -> dict:
        async def one(i: int, ids: list[int], settings: GenerationSettings) -> Screened:
            async def release(text: str) -> None:
                await emit({**base, "choices": [choice(i, text, None)]})

            result = await s.write(
                ids,
                settings,
                age_group=server.settings.completions_age_group,
                story=False,
                deadline=deadline,
                repeatable=cacheable,
                release=release if emit else None,
                shown=lambda text: prompts[i] + text,  # what a reader of the completion sees: prompt and all
            )
            if emit:
                await emit({**base, "choices": [choice(i, "", result.finish_reason)]})
            return result

        return completion(base, await asyncio.gather(*(one(i, *row) for i, row in enumerate(rows))))

    include_usage = bool(body.stream_options and body.stream_options.get("include_usage"))
    answer = Answer(
        name="completion",
        key=server.cache_key(request, fields) if cacheable else None,
        prepare=prepare,
        produce=produce,
        whole=lambda value, cached: value,
        replay=lambda value: [{**head(value), "choices": [c]} for c in value["choices"]],
        tail=lambda value: [{**base, "choices": [], "usage": value["usage"]}] if include_usage else [],
        text=lambda value: " | ".join(c["text"] for c in value["choices"]),
    )
    return await respond(server, request, answer, body.stream)


def too_long_for_context(body: CompletionRequest, encoded: list[list[int]], context: int | None) -> Response | None:
    """The 400 of a prompt that leaves the model's context no room for ``max_tokens``."""
    for i, ids in enumerate(encoded):
        if context is not None and len(ids) >= context:
            return past_context(f"prompt {i} is {len(ids)} tokens; the model's context is {context}", "prompt")
        if body.max_tokens is not None and context is not None and len(ids) + body.max_tokens > context:
            return past_context(
                f"prompt {i} ({len(ids)} tokens) plus max_tokens ({body.max_tokens}) is past the "
                f"model's context of {context}",
                "max_tokens",
            )
    return None


def choice(i: int, text: str, finish: str | None) -> dict:
    return {"text": text, "index": i, "logprobs": None, "finish_reason": finish}


def completion(base: dict, results: list[Screened]) -> dict:
    usage = {k: sum(r.usage[k] for r in results) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {**base, "choices": [choice(i, r.text, r.finish_reason) for i, r in enumerate(results)], "usage": usage}


def head(value: dict) -> dict:
    """A completion's fields that every chunk of its stream repeats."""
    return {k: value[k] for k in ("id", "object", "created", "model")}
