"""Who may call the service, how much, and what a browser may do with its page.

- API keys (``AITALE_SERVE_API_KEYS`` or a file of keys): the ``/v1/*`` routes want
  ``Authorization: Bearer <key>``, compared in constant time with every configured key. A caller is
  known only by a digest of its key (its ``key id``), which scopes its limits and its cache entries
  and is all the logs may show.
- Per-key limits: a request rate (a token bucket) and a cap on requests in flight, each a 429 with
  ``Retry-After``, so one client cannot starve the others.
- Browser rules: a strict Content-Security-Policy (the page's script and styles are files of this
  server, nothing inline, nothing from elsewhere), ``X-Content-Type-Options: nosniff`` and no framing;
  CORS only for the configured origins (Starlette's CORSMiddleware).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ANONYMOUS = "anonymous"  # the key id of every caller when no keys are configured
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})  # the Host names a keyless server answers
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def key_id(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def read_keys(inline: str, path: Path | None) -> list[str]:
    """Keys from a comma-separated setting and from a file (one per line; ``#`` starts a comment)."""
    keys = [k.strip() for k in inline.split(",") if k.strip()]
    if path is not None:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.split("#", 1)[0].strip():
                keys.append(line.split("#", 1)[0].strip())
    return keys


class Keys:
    def __init__(self, keys: list[str]):
        self._keys = [k.encode() for k in keys]
        self._ids = [key_id(k) for k in keys]

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def identify(self, authorization: str | None) -> str | None:
        """The caller's key id, or None for a missing or wrong key. Every key is compared (in constant time),
        so the time taken does not tell which key came close."""
        if not self._keys:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        found = None
        for key, ident in zip(self._keys, self._ids):
            if hmac.compare_digest(given, key):
                found = ident
        return found


@dataclass
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


@dataclass
class KeyLimits:
    """Per key: ``rate_per_minute`` requests (bursts up to ``burst``) and ``in_flight`` at once."""

    rate_per_minute: float
    burst: int
    in_flight: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def enter(self, key: str) -> float | None:
        """None when the request may go on (then call :meth:`leave`), else the seconds to wait."""
        now = self.clock()
        bucket = self._buckets.setdefault(key, _Bucket(float(self.burst), now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate_per_minute / 60)
        bucket.updated = now
        if bucket.in_flight >= self.in_flight:
            return 1.0
        if bucket.tokens < 1:
            return (1 - bucket.tokens) * 60 / self.rate_per_minute
        bucket.tokens -= 1
        bucket.in_flight += 1
        return None

    def leave(self, key: str) -> None:
        self._buckets[key].in_flight -= 1


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def host_name(host: str) -> str:
    """The name in a Host header, without its port: ``localhost:8000`` -> ``localhost``, ``[::1]:80`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
