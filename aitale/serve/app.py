"""The HTTP API: OpenAI-style completions, the product's stories, models, health, readiness, metrics, the page.

:func:`create_app` puts together the shared state (:mod:`aitale.serve.state`), the middleware (body limit,
CORS, API keys and security headers, request ids and logs), the error handlers and the routers
(:mod:`~aitale.serve.info`, :mod:`~aitale.serve.completions`, :mod:`~aitale.serve.stories`).

Errors use the OpenAI error body ``{"error": {"message", "type", "param", "code"}}``. A bad request
(invalid JSON, an unknown field, a value out of range, a prompt past the context) gets 400/422
naming the field and never reaches the engine; no request can take the server down or leave it
unready.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from aitale.serve import completions, info, stories
from aitale.serve.answers import error
from aitale.serve.limits import BodyLimit
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

    app = FastAPI(title="AI Tale story service", version="1", lifespan=lifespan, docs_url="/docs")
    app.state.server = server
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        on_reject=lambda: server.metrics.rejections.labels("body_too_large").inc(),
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
    # added last, so outermost: every answer is counted and logged, every answer carries the headers
    app.middleware("http")(guard)
    app.middleware("http")(count_and_log)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ServiceError, service_error)
    for module in (info, completions, stories):
        app.include_router(module.router)
    return app


async def guard(request: Request, call_next):
    """API keys on /v1/*, /metrics for loopback only (unless configured), security headers on every answer."""
    server: ServerState = request.app.state.server
    path = request.url.path
    request.state.key_id = ANONYMOUS
    if path.startswith("/v1/") and request.method != "OPTIONS":
        found = server.keys.identify(request.headers.get("authorization"))
        if found is None:
            server.metrics.rejections.labels("unauthorized").inc()
            response = error(
                401,
                "a valid API key is needed: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
            response.headers.update(SECURITY_HEADERS)
            return response
        request.state.key_id = found
    loopback = is_loopback(getattr(request.client, "host", None))
    if path == "/metrics" and not server.settings.metrics_public and not loopback:
        response = error(403, "/metrics is served to loopback only", code="forbidden")
    else:
        response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    return response


async def count_and_log(request: Request, call_next):
    began, request_id = time.monotonic(), uuid.uuid4().hex[:16]
    request.state.request_id = request_id
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    request.app.state.server.metrics.requests.labels(path, str(response.status_code)).inc()
    response.headers["X-Request-Id"] = request_id
    # A request id, the route, the status and the time: never the prompt, the story or a name.
    log.info("%s %s %s %d %.3fs", request_id, request.method, path, response.status_code, time.monotonic() - began)
    return response


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


async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    return error(err.status_code, str(err.detail), code="not_found" if err.status_code == 404 else None)


async def service_error(request: Request, err: ServiceError) -> JSONResponse:
    headers = {"Retry-After": retry_after(err.retry_after)} if err.status in (429, 503) else None
    kind = "server_error" if err.status >= 500 else "invalid_request_error"
    return error(err.status, str(err), kind=kind, code=err.code, headers=headers)
