"""The HTTP API: OpenAI-style completions, the product's stories, models, health, readiness, metrics, the page.

Errors use the OpenAI error body ``{"error": {"message", "type", "param", "code"}}``. A bad request
(invalid JSON, an unknown field, a value out of range, a prompt past the context) gets 400/422
naming the field and never reaches the engine; no request can take the server down or leave it
unready.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from aitale.data.labels import AGE_GROUPS, STYLES, THEMES
from aitale.generation.sampling import GenerationSettings
from aitale.generation.story import Refused, Story, StoryRequest, attempt_seeds, story_id
from aitale.serve.cache import BYPASS, HIT, MISS, ResponseCache, cache_key
from aitale.serve.limits import BodyLimit
from aitale.serve.metrics import Metrics
from aitale.serve.schemas import CompletionRequest
from aitale.serve.security import ANONYMOUS, SECURITY_HEADERS, KeyLimits, Keys, is_loopback, retry_after
from aitale.serve.service import Service, ServiceError
from aitale.serve.settings import ServeSettings

log = logging.getLogger("aitale.serve")

STATIC = Path(__file__).parent / "static"
SEED_RANGE = 2**63
LENGTHS = (("short", 120), ("medium", 250), ("long", 400))  # the page's story lengths, in tokens
PROMPT_ROOM = 24  # tokens left for the title and control line when the page caps a length to the context


def error_body(
    message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, kind, param, code), status_code=status, headers=headers)


class Limiter:
    """Requests being generated at once: past ``limit``, new ones get 429 with Retry-After."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0

    def try_enter(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1


def create_app(settings: ServeSettings) -> FastAPI:
    metrics = Metrics()
    cache = ResponseCache(settings.cache_entries, settings.cache_ttl_s)
    limiter = Limiter(settings.max_in_flight)
    keys = Keys(settings.keys())
    per_key = KeyLimits(settings.key_rate_per_minute, settings.key_burst, settings.key_in_flight)
    state: dict[str, Any] = {"service": None, "status": "loading", "error": None}

    def load() -> None:
        try:
            state["service"] = Service(settings, metrics)
            state["status"] = "ready"
            log.info("ready: %s (%s, sha256 %s…)", settings.model_name, settings.variant, state["service"].sha256[:12])
        except Exception as err:  # noqa: BLE001 - reported by /ready and the log; /health stays up
            state["status"], state["error"] = "failed", f"{type(err).__name__}: {err}"
            log.error("the model could not be loaded: %s", state["error"])

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=load, name="aitale-load", daemon=True).start()
        yield
        state["status"] = "draining"
        if state["service"] is not None:
            state["service"].close()

    app = FastAPI(title="AI Tale story service", version="1", lifespan=lifespan, docs_url="/docs")
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        on_reject=lambda: metrics.rejections.labels("body_too_large").inc(),
    )
    if settings.origins:  # without configured origins no CORS header is sent: browsers keep other sites out
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def service() -> Service:
        if state["service"] is None:
            raise ServiceError(503, "not_ready", "the model is still loading; see /ready")
        return state["service"]

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """API keys on /v1/*, /metrics for loopback only (unless configured), security headers on every answer."""
        path = request.url.path
        request.state.key_id = ANONYMOUS
        if path.startswith("/v1/") and request.method != "OPTIONS":
            found = keys.identify(request.headers.get("authorization"))
            if found is None:
                metrics.rejections.labels("unauthorized").inc()
                response = error(
                    401,
                    "a valid API key is needed: send 'Authorization: Bearer <key>'",
                    code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                response.headers.update(SECURITY_HEADERS)
                return response
            request.state.key_id = found
        if (
            path == "/metrics"
            and not settings.metrics_public
            and not is_loopback(getattr(request.client, "host", None))
        ):
            response = error(403, "/metrics is served to loopback only", code="forbidden")
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.middleware("http")
    async def count_and_log(request: Request, call_next):
        began, request_id = time.monotonic(), uuid.uuid4().hex[:16]
        request.state.request_id = request_id
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(path, str(response.status_code)).inc()
        response.headers["X-Request-Id"] = request_id
        # A request id, the route, the status and the time: never the prompt, the story or a name.
        log.info("%s %s %s %d %.3fs", request_id, request.method, path, response.status_code, time.monotonic() - began)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        if first["type"] == "json_invalid":
            return error(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}")
        loc = [str(part) for part in first["loc"] if part != "body"]
        param = ".".join(loc) or None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in err.errors()
        )
        return error(422, problems, param=param, code="invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error(err.status_code, str(err.detail), code="not_found" if err.status_code == 404 else None)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, err: ServiceError) -> JSONResponse:
        headers = {"Retry-After": retry_after(err.retry_after)} if err.status in (429, 503) else None
        kind = "server_error" if err.status >= 500 else "invalid_request_error"
        return error(err.status, str(err), kind=kind, code=err.code, headers=headers)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        body = {"status": state["status"], **({"error": state["error"]} if state["error"] else {})}
        return JSONResponse(body, status_code=200 if state["status"] == "ready" else 503)

    @app.get("/metrics")
    async def metrics_page() -> Response:
        if state["service"] is not None:  # the engine drops cancelled waiting requests without a service event
            state["service"].refresh_gauges()
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [service().info()]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict:
        if model_id != settings.model_name:
            raise ServiceError(404, "model_not_found", f"the model {model_id!r} does not exist")
        return service().info()

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        from aitale.templates import render

        # the lengths offered fit the model's context (a small model's 64 positions hold no 400-token story)
        room = (state["service"].context if state["service"] else None) or 1024
        lengths = [(name, min(tokens, max(8, room - PROMPT_ROOM))) for name, tokens in LENGTHS]
        page = render(
            "story_page.html.j2",
            model=settings.model_name,
            age_groups=AGE_GROUPS,
            styles=STYLES,
            themes=THEMES,
            lengths=lengths,
        )
        return HTMLResponse(page)

    # --- generation -------------------------------------------------------------------

    def admit(request: Request):
        """Count the request against the server's and its key's limits (429 past either); returns how to leave."""
        key = request.state.key_id
        wait = per_key.enter(key)
        if wait is not None:
            metrics.rejections.labels("key_limit").inc()
            raise ServiceError(
                429,
                "rate_limit_exceeded",
                "this API key has too many requests in flight or too many in the last minute; retry later",
                retry_after=wait,
            )
        if not limiter.try_enter():
            per_key.leave(key)
            metrics.rejections.labels("too_many_requests").inc()
            raise ServiceError(
                429, "rate_limit_exceeded", f"more than {settings.max_in_flight} requests at once; retry later"
            )

        def leave() -> None:
            limiter.leave()
            per_key.leave(key)

        return leave

    def debug_text(request: Request, what: str, text: str) -> None:
        if settings.log_text:  # off unless asked for: prompts and stories can hold children's names
            log.info("%s %s: %r", request.state.request_id, what, text)

    def scope(request: Request) -> str:
        return "" if settings.share_cache else request.state.key_id

    def settings_for(s: Service, body: CompletionRequest | StoryRequest, seed: int, room: int) -> GenerationSettings:
        base = s.defaults.but(seed=seed)
        if isinstance(body, StoryRequest):
            if body.max_tokens is not None:
                base = base.but(
                    max_new_tokens=body.max_tokens, min_new_tokens=min(base.min_new_tokens, body.max_tokens)
                )
            return base.but(max_new_tokens=min(base.max_new_tokens, room))
        return body.settings(base, room)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        s = service()
        if body.model != settings.model_name:
            raise ServiceError(404, "model_not_found", f"the model {body.model!r} does not exist")
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        encoded = [s.codec.encode(p) for p in prompts]
        for i, ids in enumerate(encoded):
            if s.context is not None and len(ids) >= s.context:
                return error(
                    400,
                    f"prompt {i} is {len(ids)} tokens; the model's context is {s.context}",
                    param="prompt",
                    code="context_length_exceeded",
                )
            if body.max_tokens is not None and s.context is not None and len(ids) + body.max_tokens > s.context:
                return error(
                    400,
                    f"prompt {i} ({len(ids)} tokens) plus max_tokens ({body.max_tokens}) is past the "
                    f"model's context of {s.context}",
                    param="max_tokens",
                    code="context_length_exceeded",
                )
        seed = body.seed if body.seed is not None else secrets.randbelow(SEED_RANGE)
        per_row = [settings_for(s, body, seed, (s.context or 10**9) - len(ids)) for ids in encoded]
        cacheable = body.seed is not None or not per_row[0].do_sample
        key = (
            cache_key(
                s.sha256 + s.screen_sha256,
                scope(request),
                {"route": "completions", **body.cache_fields(), "seed": body.seed},
            )
            if cacheable
            else None
        )
        created, response_id = int(time.time()), "cmpl-" + uuid.uuid4().hex[:24]
        deadline = time.monotonic() + settings.request_timeout_s

        def choice(i: int, text: str, finish: str | None) -> dict:
            return {"text": text, "index": i, "logprobs": None, "finish_reason": finish}

        def response(results) -> dict:
            usage = {
                k: sum(r.usage[k] for r in results) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            }
            return {
                "id": response_id,
                "object": "text_completion",
                "created": created,
                "model": settings.model_name,
                "choices": [choice(i, r.text, r.finish_reason) for i, r in enumerate(results)],
                "usage": usage,
            }

        async def produce(queue: asyncio.Queue | None = None) -> dict:
            async def one(i: int, ids: list[int], st: GenerationSettings):
                async def release(text: str) -> None:
                    await queue.put(sse({**chunk_base(base), "choices": [choice(i, text, None)]}))

                result = await s.write(
                    ids,
                    st,
                    age_group=settings.completions_age_group,
                    story=False,
                    deadline=deadline,
                    repeatable=cacheable,
                    release=release if queue else None,
                )
                if queue:
                    await queue.put(sse({**chunk_base(base), "choices": [choice(i, "", result.finish_reason)]}))
                return result

            return response(
                await asyncio.gather(*(one(i, ids, st) for i, (ids, st) in enumerate(zip(encoded, per_row))))
            )

        base = {"id": response_id, "object": "text_completion", "created": created, "model": settings.model_name}
        cached = cache.get(key) if key else None
        metrics.cache.labels(HIT if cached else MISS if key else BYPASS).inc()
        header = {"X-Cache": HIT if cached else MISS if key else BYPASS}
        if cached and not body.stream:
            return JSONResponse(cached, headers=header)
        if cached:
            chunks = [sse({**chunk_base(cached), "choices": [c]}) for c in cached["choices"]]
            return StreamingResponse(iter([*chunks, DONE]), media_type="text/event-stream", headers=header)
        leave = admit(request)
        if not body.stream:
            try:
                value, _ = await cache.shared(key, produce) if key else (await produce(), False)
            finally:
                leave()
            debug_text(request, "completion", " | ".join(c["text"] for c in value["choices"]))
            return JSONResponse(value, headers=header)

        include_usage = bool(body.stream_options and body.stream_options.get("include_usage"))

        async def stream() -> AsyncIterator[bytes]:
            queue: asyncio.Queue = asyncio.Queue()
            task = asyncio.create_task(produce(queue))
            try:
                async for chunk in drain(task, queue):
                    yield chunk
                value = task.result()
                if include_usage:
                    yield sse({**base, "choices": [], "usage": value["usage"]})
                if key:
                    cache.put(key, value)
            except ServiceError as err:
                yield sse(error_body(str(err), "server_error", code=err.code))
            finally:
                task.cancel()
                leave()
            yield DONE

        return StreamingResponse(stream(), media_type="text/event-stream", headers=header)

    @app.post("/v1/stories")
    async def stories(body: StoryRequest, request: Request) -> Response:
        s = service()
        prompt_ids = s.codec.encode(body.prompt())
        room = (s.context or 10**9) - len(prompt_ids)
        if room < 1:
            return error(
                400,
                f"the title is too long for the model's context of {s.context} tokens",
                param="title",
                code="context_length_exceeded",
            )
        if body.max_tokens is not None and body.max_tokens > room:
            return error(
                400,
                f"max_tokens ({body.max_tokens}) is past the room the model's context leaves "
                f"({room} tokens after the prompt)",
                param="max_tokens",
                code="context_length_exceeded",
            )
        seed = body.seed if body.seed is not None else secrets.randbelow(SEED_RANGE)
        fields = body.model_dump(exclude={"stream"})
        key = (
            cache_key(
                s.sha256 + s.screen_sha256, scope(request), {"route": "stories", **fields, "redraws": settings.redraws}
            )
            if body.seed is not None
            else None
        )
        cached = cache.get(key) if key else None
        metrics.cache.labels(HIT if cached else MISS if key else BYPASS).inc()
        header = {"X-Cache": HIT if cached else MISS if key else BYPASS}
        deadline = time.monotonic() + settings.request_timeout_s

        async def tell(release=None, retry=None) -> dict:
            verdicts = []
            for attempt, draw in enumerate(attempt_seeds(seed, settings.redraws), start=1):
                result = await s.write(
                    prompt_ids,
                    settings_for(s, body, draw, room),
                    age_group=body.age_group,
                    story=True,
                    deadline=deadline,
                    repeatable=body.seed is not None,
                    release=release,
                )
                verdicts.append(result.verdict)
                if result.safe:
                    return Story(
                        id=story_id(s.sha256, body, seed),
                        title=body.title.strip(),
                        text=result.text,
                        age_group=body.age_group,
                        themes=list(body.themes),
                        style=body.style,
                        model=settings.model_name,
                        finish_reason=result.finish_reason,
                        usage=result.usage,
                        seed=seed,
                        safety={**result.verdict, "attempts": attempt},
                        attempts=attempt,
                    ).to_json()
                if retry is not None:
                    await retry(attempt)
            raise Refused(body, len(verdicts), verdicts)

        if cached and not body.stream:
            return JSONResponse({**cached, "cached": True}, headers=header)
        if cached:
            chunks = [
                sse({"object": "story.chunk", "text": cached["text"]}),
                sse({**cached, "object": "story", "cached": True}),
            ]
            return StreamingResponse(iter([*chunks, DONE]), media_type="text/event-stream", headers=header)
        leave = admit(request)
        if not body.stream:
            try:
                value, shared = await cache.shared(key, tell) if key else (await tell(), False)
            except Refused as refused:
                return JSONResponse(refusal_body(refused), status_code=422)
            finally:
                leave()
            debug_text(request, "story", value["text"])
            return JSONResponse({**value, "cached": shared}, headers=header)

        async def stream() -> AsyncIterator[bytes]:
            queue: asyncio.Queue = asyncio.Queue()

            async def release(text: str) -> None:
                await queue.put(sse({"object": "story.chunk", "text": text}))

            async def retry(attempt: int) -> None:
                await queue.put(
                    sse(
                        {
                            "object": "story.retry",
                            "attempt": attempt,
                            "message": "that draw failed the content screen; writing another",
                        }
                    )
                )

            task = asyncio.create_task(tell(release, retry))
            try:
                async for chunk in drain(task, queue):
                    yield chunk
                value = task.result()
                if key:
                    cache.put(key, value)
                yield sse({**value, "object": "story", "cached": False})
            except Refused as refused:
                yield sse(refusal_body(refused))
            except ServiceError as err:
                yield sse(error_body(str(err), "server_error", code=err.code))
            finally:
                task.cancel()
                leave()
            yield DONE

        return StreamingResponse(stream(), media_type="text/event-stream", headers=header)

    return app


DONE = b"data: [DONE]\n\n"


def chunk_base(value: dict) -> dict:
    return {k: value[k] for k in ("id", "object", "created", "model")}


def sse(data: dict) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def drain(task: asyncio.Task, queue: asyncio.Queue) -> AsyncIterator[bytes]:
    """What ``task`` puts in ``queue``, as it comes, until the task is done and the queue empty."""
    while not (task.done() and queue.empty()):
        getter = asyncio.ensure_future(queue.get())
        finished, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter in finished:
            yield getter.result()
        else:
            getter.cancel()


def refusal_body(refused: Refused) -> dict:
    """The 422 of a story every draw of which failed the screen: the reasons, not the text."""
    body = error_body(str(refused), "content_filter", code="content_filter")
    body["error"]["reasons"] = [
        {k: r.get(k) for k in ("category", "source", "detail")} for v in refused.verdicts for r in v.get("reasons", [])
    ][:20]
    return body
