"""What every route of one server shares: its settings, metrics, cache, limits and keys, and the service
once the model has loaded (in a thread, so that ``/health`` answers from the start)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from aitale.serve.cache import ResponseCache, cache_key, raw_key
from aitale.serve.limits import BODY
from aitale.serve.metrics import Metrics
from aitale.serve.security import LOOPBACK_NAMES, KeyLimits, Keys, host_name, is_loopback
from aitale.serve.service import Service, ServiceError
from aitale.serve.settings import ServeSettings

log = logging.getLogger("aitale.serve")


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


class ServerState:
    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.metrics = Metrics()
        self.cache = ResponseCache(settings.cache_entries, settings.cache_ttl_s)
        self.limiter = Limiter(settings.max_in_flight)
        self.keys = Keys(settings.keys())
        # Without keys on loopback every caller is this machine, one "anonymous" key: per-key limits there
        # would only stop a load test (max_in_flight still holds). With keys, or keyless on another address
        # (--allow-public-without-keys), every key is limited.
        self.keyless_loopback = not self.keys.required and is_loopback(settings.host)
        self.per_key = (
            None
            if self.keyless_loopback
            else KeyLimits(settings.key_rate_per_minute, settings.key_burst, settings.key_in_flight)
        )
        self.host_names = LOOPBACK_NAMES | {settings.host.lower()}
        self.loaded: Service | None = None
        self.routes: dict[str, Any] = {}  # path -> route, once the app has them (labels of remembered answers)
        self.status, self.error = "loading", None

    def load(self) -> None:
        try:
            self.loaded = Service(self.settings, self.metrics)
            self.status = "ready"
            log.info(
                "ready: %s (%s, sha256 %s…)", self.settings.model_name, self.settings.variant, self.loaded.sha256[:12]
            )
        except Exception as err:  # noqa: BLE001 - reported by /ready and the log; /health stays up
            self.status, self.error = "failed", f"{type(err).__name__}: {err}"
            log.error("the model could not be loaded: %s", self.error)

    def close(self) -> None:
        self.status = "draining"
        if self.loaded is not None:
            self.loaded.close()

    @property
    def service(self) -> Service:
        if self.loaded is None:
            raise ServiceError(503, "not_ready", "the model is still loading; see /ready")
        return self.loaded

    def host_allowed(self, host: str | None) -> bool:
        """Whether a keyless server on loopback answers a request with this Host header (its loopback names only:
        a page elsewhere, its name pointed at 127.0.0.1, sends its own)."""
        return host is not None and host_name(host) in self.host_names

    def admit(self, key: str, cached: bool = False) -> Callable[[], None]:
        """Count a request against its key's limits and, unless its answer is ``cached``, the server's (429 past
        either); returns how to leave. A cache hit costs its key a request like any other."""
        if self.per_key is not None and (wait := self.per_key.enter(key)) is not None:
            self.metrics.rejections.labels("key_limit").inc()
            raise ServiceError(
                429,
                "rate_limit_exceeded",
                "this API key has too many requests in flight or too many in the last minute; retry later",
                retry_after=wait,
            )
        if not cached and not self.limiter.try_enter():
            if self.per_key is not None:
                self.per_key.leave(key)
            self.metrics.rejections.labels("too_many_requests").inc()
            raise ServiceError(
                429, "rate_limit_exceeded", f"more than {self.settings.max_in_flight} requests at once; retry later"
            )

        def leave() -> None:
            if not cached:
                self.limiter.leave()
            if self.per_key is not None:
                self.per_key.leave(key)

        return leave

    def cache_key(self, request: Request, fields: dict[str, Any]) -> str:
        """The key of a repeatable request: the served files, the caller (unless the cache is shared), the fields."""
        service = self.service
        return cache_key(service.sha256 + service.screen_sha256, self.cache_scope(request.state.key_id), fields)

    def cache_scope(self, key_id: str) -> str:
        return "" if self.settings.share_cache else key_id

    def remember(self, request: Request, key: str, answer: tuple[str, bytes]) -> None:
        """Answer this exact request (route, caller, body bytes) with ``answer`` while ``key`` is stored."""
        raw = raw_key(self.cache_scope(request.state.key_id), request.url.path, request.scope.get(BODY, b""))
        self.cache.remember(raw, key, answer)

    def log_text(self, request: Request, what: str, text: str) -> None:
        if self.settings.log_text:  # off unless asked for: prompts and stories can hold children's names
            log.info("%s %s: %r", request.state.request_id, what, text)


def _state(request: Request) -> ServerState:
    return request.app.state.server


Server = Annotated[ServerState, Depends(_state)]  # a route's parameter of this type receives the shared state
