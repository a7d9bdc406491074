"""A request's head and body arrive whole, in time and within their size, or the connection is answered and ended.

- :class:`Body` (ASGI middleware) reads the whole body before the app sees it: a ``Content-Length`` over
  ``max_bytes``, or a chunked body that grows past it, gets 413; a body that stalls for ``read_timeout_s``
  between two pieces gets 408. The app then receives the body as one message, so no route or parser can
  turn an oversized or stalled body into another error.
- :func:`timed_protocol` is uvicorn's h11 protocol with a deadline on the head: a connection that sends
  nothing, or part of a request line and headers, for ``read_timeout_s`` is closed (uvicorn's own
  keep-alive timer covers only the quiet time after an answer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

BODY = "aitale.body"  # the scope key of the request's whole body, once Body has read it


class Body:
    """ASGI middleware: the body whole and within ``max_bytes`` (413), each piece within ``read_timeout_s`` (408)."""

    def __init__(self, app, max_bytes: int, read_timeout_s: float, on_reject: Callable[[str], None] | None = None):
        self.app, self.max_bytes, self.read_timeout_s, self.on_reject = app, max_bytes, read_timeout_s, on_reject

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send, 413)
        parts, size, more = [], 0, True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                return await self._reject(send, 408)
            if message["type"] != "http.request":  # the client went away before its body came
                return None
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > self.max_bytes:
                return await self._reject(send, 413)
            more = message.get("more_body", False)
        scope[BODY] = b"".join(parts)  # for the cache of exact requests (aitale.serve.app.Remembered)
        return await self.app(scope, _replay(scope[BODY], receive), send)

    async def _reject(self, send, status: int) -> None:
        reason, code, message = (
            ("body_too_large", "request_too_large", f"the request body is larger than {self.max_bytes} bytes")
            if status == 413
            else ("body_timeout", "request_timeout", f"the request body stalled for {self.read_timeout_s:g} s")
        )
        if self.on_reject:
            self.on_reject(reason)
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        body = json.dumps({"error": error}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive):
    """``receive`` for the app: the buffered body once, then the connection's own messages (a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def timed_protocol(read_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request head has not come whole in ``read_timeout_s``."""

    class TimedH11(H11Protocol):
        head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._wait_for_head()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
                self._wait_for_head()  # part of a head is here: it has until the timer to come whole
            elif self.head_timer is not None and self.conn.their_state is not h11.IDLE:
                self.head_timer.cancel()
                self.head_timer = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._wait_for_head()

        def connection_lost(self, exc) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
            super().connection_lost(exc)

        def _wait_for_head(self) -> None:
            if self.head_timer is None:
                self.head_timer = self.loop.call_later(read_timeout_s, self._head_timed_out)

        def _head_timed_out(self) -> None:
            self.head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return TimedH11
