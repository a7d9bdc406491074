"""How the generation routes answer: the OpenAI error body, server-sent events, and :func:`respond`, the one
path of a generated answer, whether it comes from the cache, whole (JSON) or streamed (``text/event-stream``).

Every error is ``{"error": {"message", "type", "param", "code"}}``; a stream that fails part-way ends with
that body as its last event before ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from aitale.generation.story import Refused
from aitale.serve.cache import BYPASS, HIT, MISS
from aitale.serve.service import ServiceError

if TYPE_CHECKING:
    from aitale.serve.state import ServerState

DONE = b"data: [DONE]\n\n"
Emit = Callable[[dict], Awaitable[None]]  # sends one event of a stream


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


def past_context(message: str, param: str) -> JSONResponse:
    """The 400 of a request whose prompt leaves the model's context too little room."""
    return error(400, message, param=param, code="context_length_exceeded")


def refusal_body(refused: Refused) -> dict:
    """The 422 of a story whose title, or every draw, failed the screen: the reasons, not the text."""
    body = error_body(str(refused), "content_filter", param="title" if refused.title else None, code="content_filter")
    body["error"]["reasons"] = [
        {k: r.get(k) for k in ("category", "source", "detail")} for v in refused.verdicts for r in v.get("reasons", [])
    ][:20]
    return body


def sse(data: dict) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@dataclass(frozen=True)
class Answer:
    """A generation route's answer, in each of its forms.

    ``prepare()`` does what only a generation needs (encoding, the context check), returning an error
    answer or None; ``produce(emit)`` generates the value (a JSON object), sending the stream's events
    through ``emit`` as they are written (``emit`` is None for a whole answer); ``key`` is its cache key
    (None: never cached), looked up before either. ``whole(value, cached)`` is the JSON answer,
    ``replay(value)`` a cached value's events and ``tail(value)`` the events that close a stream once the
    value is complete; ``text(value)`` is what ``log_text`` may log, as ``name``.
    """

    name: str
    key: str | None
    prepare: Callable[[], Response | None]
    produce: Callable[[Emit | None], Awaitable[dict]]
    whole: Callable[[dict, bool], dict]
    replay: Callable[[dict], list[dict]]
    tail: Callable[[dict], list[dict]]
    text: Callable[[dict], str]


async def respond(server: ServerState, request: Request, answer: Answer, stream: bool) -> Response:
    """A cached value if there is one (the engine and the screen untouched), else the value generated; either
    way the request counts against its key's limits first (429 past them)."""
    cached = server.cache.get(answer.key) if answer.key else None
    if cached is None and (refused := answer.prepare()) is not None:
        return refused
    leave = server.admit(request.state.key_id, cached=cached is not None)
    result = HIT if cached else MISS if answer.key else BYPASS
    server.metrics.cache.labels(result).inc()
    headers = {"X-Cache": result}
    if cached:
        leave()
        media_type, body = _hit(answer, cached, stream)
        server.remember(request, answer.key, (media_type, body))
        return Response(body, media_type=media_type, headers=headers)
    if stream:
        streamed = _streamed(server, request, answer, leave)
        return StreamingResponse(streamed, media_type="text/event-stream", headers=headers)
    try:
        if answer.key:
            value, shared = await server.cache.shared(answer.key, lambda: answer.produce(None))
        else:
            value, shared = await answer.produce(None), False
    except Refused as refused:
        return JSONResponse(refusal_body(refused), status_code=422)
    finally:
        leave()
    server.log_text(request, answer.name, answer.text(value))
    if answer.key:
        server.remember(request, answer.key, _hit(answer, value, stream))
    return JSONResponse(answer.whole(value, shared), headers=headers)


def _hit(answer: Answer, value: dict, stream: bool) -> tuple[str, bytes]:
    """What a cache hit of ``value`` answers: its media type and body (the replayed stream, or the JSON)."""
    if stream:
        return "text/event-stream", b"".join([*(sse(event) for event in answer.replay(value)), DONE])
    return "application/json", JSONResponse(answer.whole(value, True)).body


async def _streamed(
    server: ServerState, request: Request, answer: Answer, leave: Callable[[], None]
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue = asyncio.Queue()

    async def emit(event: dict) -> None:
        await queue.put(sse(event))

    task = asyncio.create_task(answer.produce(emit))
    try:
        async for chunk in _drain(task, queue):
            yield chunk
        value = task.result()
        if answer.key:
            server.cache.put(answer.key, value)
            server.remember(request, answer.key, _hit(answer, value, True))
        for event in answer.tail(value):
            yield sse(event)
    except Refused as refused:
        yield sse(refusal_body(refused))
    except ServiceError as err:
        yield sse(error_body(str(err), "server_error", code=err.code))
    finally:
        _forget(task)  # the client may have gone: the generation stops, and its end is not an error to log
        leave()
    yield DONE


async def _drain(task: asyncio.Task, queue: asyncio.Queue) -> AsyncIterator[bytes]:
    """What ``task`` puts in ``queue``, as it comes, until the task is done and the queue empty."""
    while not (task.done() and queue.empty()):
        getter = asyncio.ensure_future(queue.get())
        try:
            finished, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            _forget(getter)  # a getter left pending when the client hangs up would be destroyed pending
        if getter in finished:
            yield getter.result()


def _forget(task: asyncio.Future) -> None:
    """Cancel ``task`` if it is still running and retrieve its outcome when it ends, so that nothing is
    left pending or logged as never retrieved."""
    if not task.done():
        task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
