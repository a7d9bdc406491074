"""The routes that generate nothing: health, readiness, metrics, the model list and the story page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response

from aitale.labels import AGE_GROUPS, STYLES, THEMES
from aitale.serve.service import ServiceError
from aitale.serve.state import Server

LENGTHS = (("short", 120), ("medium", 250), ("long", 400))  # the page's story lengths, in tokens
PROMPT_ROOM = 24  # tokens left for the title and control line when the page caps a length to the context

router = APIRouter()


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready")
async def ready(server: Server) -> JSONResponse:
    body = {"status": server.status, **({"error": server.error} if server.error else {})}
    return JSONResponse(body, status_code=200 if server.status == "ready" else 503)


@router.get("/metrics")
async def metrics_page(server: Server) -> Response:
    if server.loaded is not None:  # the engine drops cancelled waiting requests without a service event
        server.loaded.refresh_gauges()
    return Response(server.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/v1/models")
async def models(server: Server) -> dict:
    return {"object": "list", "data": [server.service.info()]}


@router.get("/v1/models/{model_id}")
async def model(model_id: str, server: Server) -> dict:
    if model_id != server.settings.model_name:
        raise ServiceError(404, "model_not_found", f"the model {model_id!r} does not exist")
    return server.service.info()


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def page(server: Server) -> HTMLResponse:
    from aitale.templates import render

    # the lengths offered fit the model's context (a small model's 64 positions hold no 400-token story)
    room = (server.loaded.context if server.loaded else None) or 1024
    lengths = [(name, min(tokens, max(8, room - PROMPT_ROOM))) for name, tokens in LENGTHS]
    html = render(
        "story_page.html.j2",
        model=server.settings.model_name,
        age_groups=AGE_GROUPS,
        styles=STYLES,
        themes=THEMES,
        lengths=lengths,
    )
    return HTMLResponse(html)
