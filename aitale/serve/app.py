"""The HTTP API: OpenAI-style completions, the product's stories, models, health, readiness, metrics, the page.

:func:`create_app` puts together the shared state (:mod:`aitale.serve.state`), the middleware (body limit,
CORS, API keys and security headers, request ids and logs), the error handlers and the routers
(:mod:`~aitale.serve.info`, :mod:`~aitale.serve.completions`, :mod:`~aitale.serve.stories`).

Errors use the OpenAI error body ``{"error": {"message", "type", "param", "code"}}``. A bad request
(invalid JSON, an unknown field, a value out of range, a prompt past the context) gets 400/422
naming the field and never reaches the engine; an unexpected error gets a 500 in the same shape,
counted and logged; no request can take the server down or leave it unready.

The middleware, outermost first: request ids, counts, logs and security headers on every answer;
CORS (so a 401 or 413 to an allowed origin carries its headers); the body, whole, in time and within
its size (:mod:`aitale.serve.limits`); the host and key check (:func:`guard`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from aitale.serve import completions, info, stories
from aitale.serve.answers import error
from aitale.serve.cache import HIT, raw_key
from aitale.serve.limits import BODY, Body
from aitale.serve.security import ANONYMOUS, SECURITY_HEADERS, is_loopback, retry_after
from aitale.serve.service import ServiceError
from aitale.serve.settings import ServeSettings
from aitale.serve.state import ServerState

log = logging.getLogger("aitale.serve")

STATIC = Path(__file__).parent / "static"


def create_app(settings: ServeSettings) -> FastAPI:
    server = ServerState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=server.load, name="aitale-load", daemon=True).start()
        yield
        server.close()

    # no /docs or /redoc: they load their scripts from a CDN, which the page's CSP rightly blocks;
    # /openapi.json is behind the API key like /v1/*
    app = FastAPI(title="AI Tale story service", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = server
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # each middleware added wraps the ones before it: the last added is the outermost
    app.add_middleware(Remembered, server=server)
    app.add_middleware(Guard, server=server, openapi_url=app.openapi_url)
    app.add_middleware(
        Body,
        max_bytes=settings.max_body_bytes,
        read_timeout_s=settings.read_timeout_s,
        on_reject=lambda reason: server.metrics.rejections.labels(reason).inc(),
    )
    if settings.origins:  # without configured origins no CORS header is sent: browsers keep other sites out
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(CountAndLog, server=server)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ServiceError, service_error)
    for module in (info, completions, stories):
        app.include_router(module.router)
    server.routes = {route.path: route for route in app.routes if hasattr(route, "path")}
    return app


class Guard:
    """ASGI middleware: the Host header of a keyless server on loopback (its loopback names only), API keys on
    /v1/* and the API schema, /metrics for loopback only (unless configured)."""

    def __init__(self, app, server: ServerState, openapi_url: str | None):
        self.app, self.server, self.openapi_url = app, server, openapi_url

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request, server = Request(scope), self.server
        path = scope["path"]
        request.state.key_id = ANONYMOUS
        refused = None
        if server.keyless_loopback and not server.host_allowed(request.headers.get("host")):
            # a page elsewhere whose name was pointed at 127.0.0.1 (DNS rebinding) sends its own name as Host
            server.metrics.rejections.labels("invalid_host").inc()
            refused = error(400, "this server answers only to its loopback names (Host header)", code="invalid_host")
        elif (path.startswith("/v1/") or path == self.openapi_url) and scope["method"] != "OPTIONS":
            found = server.keys.identify(request.headers.get("authorization"))
            if found is None:
                server.metrics.rejections.labels("unauthorized").inc()
                refused = error(
                    401,
                    "a valid API key is needed: send 'Authorization: Bearer <key>'",
                    code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            request.state.key_id = found
        elif path == "/metrics" and not server.settings.metrics_public and not is_loopback(scope["client"][0]):
            refused = error(403, "/metrics is served to loopback only", code="forbidden")
        await (refused or self.app)(scope, receive, send)


class Remembered:
    """ASGI middleware, innermost: a request whose exact bytes (route, caller, body) were answered from the cache
    or stored there is answered again from memory before anything parses it (:meth:`ResponseCache.remember`);
    it counts against its key's limits and as a cache hit like any other."""

    def __init__(self, app, server: ServerState):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        body = scope.get(BODY)
        if scope["type"] != "http" or scope["method"] != "POST" or not body or not self.server.cache.enabled:
            return await self.app(scope, receive, send)
        key_id = scope["state"]["key_id"]
        answer = self.server.cache.recall(raw_key(self.server.cache_scope(key_id), scope["path"], body))
        if answer is None:
            return await self.app(scope, receive, send)
        try:
            leave = self.server.admit(key_id, cached=True)
        except ServiceError:  # past its limits: the whole path answers the 429
            return await self.app(scope, receive, send)
        leave()
        self.server.metrics.cache.labels(HIT).inc()
        scope["route"] = self.server.routes.get(scope["path"])  # for the request count's label
        media_type, content = answer
        await Response(content, media_type=media_type, headers={"X-Cache": HIT})(scope, receive, send)


class CountAndLog:
    """Outermost ASGI middleware: a request id, the count and the log line of every answer, the security headers
    and ``Server-Timing`` (milliseconds until the answer began) on each, and the OpenAI 500 for an error nothing
    else handled."""

    def __init__(self, app, server: ServerState):
        self.app, self.server = app, server
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began, request_id = time.monotonic(), uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_headers(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # the time the server took to begin the answer (a benchmark reads it beside the client's)
                took = f"app;dur={(time.monotonic() - began) * 1000:.3f}".encode()
                extra = [*self.headers, (b"x-request-id", request_id.encode()), (b"server-timing", took)]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:  # noqa: BLE001 - any failure still gets the API's error shape, a count and a log line
            log.exception("%s %s %s failed", request_id, scope["method"], scope["path"])
            status = 500
            failed = error(500, "the server failed on this request", kind="server_error", code="server_error")
            with contextlib.suppress(Exception):  # the answer may have begun: then it can only end
                await failed(scope, receive, send_with_headers)
        path = getattr(scope.get("route"), "path", "unmatched")
        self.server.metrics.requests.labels(path, str(status)).inc()
        # A request id, the route, the status and the time: never the prompt, the story or a name.
        log.info("%s %s %s %d %.3fs", request_id, scope["method"], path, status, time.monotonic() - began)


async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
    first = err.errors()[0]
    if first["type"] == "json_invalid":
        return error(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}")
    loc = [str(part) for part in first["loc"] if part != "body"]
    param = loc[0] if loc else None  # the field ("prompt", not the union member "prompt.str")
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in err.errors()
    )
    return error(422, problems, param=param, code="invalid_value")


async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    return error(err.status_code, str(err.detail), code="not_found" if err.status_code == 404 else None)


async def service_error(request: Request, err: ServiceError) -> JSONResponse:
    headers = {"Retry-After": retry_after(err.retry_after)} if err.status in (429, 503) else None
    kind = "server_error" if err.status >= 500 else "invalid_request_error"
    return error(err.status, str(err), kind=kind, code=err.code, headers=headers)
