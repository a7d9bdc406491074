"""The server's Prometheus metrics (``GET /metrics``), in a registry of its own.

Labels are routes, status codes and reasons only: no prompt, story, title or name ever becomes a
label or a value here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Story tokens arrive every few milliseconds on a small model and every second on a large one.
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "aitale_requests", "Requests answered, by route and status", ["route", "status"], registry=r
        )
        self.ttft = Histogram(
            "aitale_time_to_first_token_seconds",
            "From the request's arrival to its first token",
            buckets=_LATENCY,
            registry=r,
        )
        self.inter_token = Histogram(
            "aitale_inter_token_seconds", "Between two tokens of one request", buckets=_LATENCY, registry=r
        )
        self.queue = Histogram(
            "aitale_queue_wait_seconds", "From arrival to a row in the running batch", buckets=_LATENCY, registry=r
        )
        self.batch = Histogram(
            "aitale_batch_size", "Rows in the batch at each decoding step", buckets=_BATCH, registry=r
        )
        self.running = Gauge("aitale_running_requests", "Rows in the running batch", registry=r)
        self.waiting = Gauge("aitale_waiting_requests", "Requests waiting for a row", registry=r)
        self.cache = Counter(
            "aitale_cache", "Response cache lookups, by result (hit, miss, bypass)", ["result"], registry=r
        )
        self.rejections = Counter(
            "aitale_rejections", "Requests refused before generation, by reason", ["reason"], registry=r
        )
        self.cancellations = Counter(
            "aitale_cancellations", "Requests whose client went away mid-generation", registry=r
        )
        self.tokens = Counter("aitale_generated_tokens", "Tokens written", registry=r)
        self.screened = Counter(
            "aitale_screen", "Texts judged by the content screen, by verdict", ["verdict"], registry=r
        )

    # engine hooks (called from the engine's thread; prometheus_client is thread-safe)
    def batch_size(self, rows: int) -> None:
        self.batch.observe(rows)

    def queue_wait(self, seconds: float) -> None:
        self.queue.observe(seconds)

    def cancelled(self) -> None:
        self.cancellations.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
