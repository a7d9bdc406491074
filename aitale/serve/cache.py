"""The response cache for common requests: exact match, in memory, bounded in size and age.

A key is the sha256 of the served file's sha256 and every request field that changes the output
(:func:`cache_key`). Only deterministic requests are cached (greedy, or a seed given): an unseeded
sampled story is never stored, or every child would get the same "random" story. Identical
requests in flight share one generation (:meth:`ResponseCache.shared`). Errors and cancelled
requests are never stored. Nothing is written to disk: a restart empties it.

Once a request's answer is stored, its exact bytes (the route, the caller and the body as sent) are
remembered beside it with the answer a hit gets (:meth:`ResponseCache.remember`): the same request again
is answered from those bytes before any parsing or validation (:class:`aitale.serve.app.Remembered`), as
long as the answer itself is still stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

HIT, MISS, BYPASS = "hit", "miss", "bypass"  # the X-Cache header


def cache_key(model_sha: str, scope: str, fields: dict[str, Any]) -> str:
    """``scope`` keeps callers apart (the API key's id, unless the cache is shared)."""
    text = json.dumps({"model": model_sha, "scope": scope, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def raw_key(scope: str, path: str, body: bytes) -> str:
    """The key of a request's exact bytes, for ``scope`` (the caller, as in :func:`cache_key`)."""
    return hashlib.sha256(b"\0".join([scope.encode(), path.encode(), body])).hexdigest()


class ResponseCache:
    def __init__(self, entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self.entries, self.ttl_s, self.clock = entries, ttl_s, clock
        self._store: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._raw: OrderedDict[str, tuple[str, tuple[str, bytes]]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future] = {}

    @property
    def enabled(self) -> bool:
        return self.entries > 0

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: str) -> Any | None:
        found = self._store.get(key)
        if found is None:
            return None
        stored_at, value = found
        if self.clock() - stored_at > self.ttl_s:
            del self._store[key]
            return None
        self._store.move_to_end(key)
        return value

    def remember(self, raw: str, key: str, answer: tuple[str, bytes]) -> None:
        """``raw`` (:func:`raw_key`) is a request whose answer is stored under ``key``; a hit answers ``answer``
        (media type, body)."""
        if self.enabled:
            self._raw[raw] = (key, answer)
            self._raw.move_to_end(raw)
            while len(self._raw) > self.entries:
                self._raw.popitem(last=False)

    def recall(self, raw: str) -> tuple[str, bytes] | None:
        """The answer remembered for the exact request ``raw``, while the answer it came from is stored."""
        found = self._raw.get(raw)
        if found is None:
            return None
        key, answer = found
        if self.get(key) is None:  # expired or evicted: the request takes the whole path again
            del self._raw[raw]
            return None
        return answer

    def put(self, key: str, value: Any) -> None:
        if not self.enabled:
            return
        self._store[key] = (self.clock(), value)
        self._store.move_to_end(key)
        while len(self._store) > self.entries:
            self._store.popitem(last=False)

    async def shared(self, key: str, produce: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """The value for ``key``: produced once by the first caller, awaited by identical callers meanwhile.

        Returns (value, whether this caller shared another's generation). A failure reaches every
        caller and stores nothing.
        """
        if key in self._in_flight:
            return await asyncio.shield(self._in_flight[key]), True
        future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            value = await produce()
        except BaseException as err:
            future.set_exception(err if isinstance(err, Exception) else asyncio.CancelledError())
            future.exception()  # retrieved, so an unawaited failure is not logged as lost
            raise
        else:
            future.set_result(value)
            self.put(key, value)
            return value, False
        finally:
            del self._in_flight[key]
