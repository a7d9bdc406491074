"""Continuous batching: one engine per served model owns its decoder and the running batch.

Requests join and leave the batch at every token step, the way vLLM and TGI batch: between two
steps the engine admits waiting requests (up to ``max_batch`` rows and a token budget, after
gathering arrivals for a few milliseconds when idle), drops rows whose request was cancelled
or ran past its deadline, and runs one step for all rows. Each row has its own settings and
seeded generator (:mod:`aitale.generation.batch`), so a seed writes the same tokens alone or in
a full batch.

The engine runs in its own thread (onnxruntime releases the GIL while it computes); each request
is a :class:`Job` whose events (new tokens, the end, an error) reach its asyncio task through
``loop.call_soon_threadsafe``. Nothing a request does can stop the engine: an exception in a step
fails the requests in that step and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aitale.generation.batch import CANCELLED, Row, batch_for
from aitale.generation.decoders import Decoder
from aitale.generation.sampling import GenerationSettings

log = logging.getLogger(__name__)

TIMEOUT, QUEUE_TIMEOUT = "timeout", "queue_timeout"  # why the engine ended a job early, besides cancellation


@dataclass(eq=False)
class Job:
    """One request's row, as the engine sees it."""

    prompt: list[int]
    settings: GenerationSettings
    deadline: float  # time.monotonic() past which the request is ended (504)
    queue_deadline: float  # ... and past which it may no longer wait for a row (503)
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    cancelled: bool = False
    row: Row | None = None
    sent: int = 0  # tokens already passed to the request
    mask: Any = None  # the tokens it may never write (aitale.safety.mask.TokenMask)

    def post(self, kind: str, value=None) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


def _deliver(events: list[tuple[Job, tuple]]) -> None:
    """In the event loop: one step's events, to each job's queue."""
    for job, event in events:
        job.events.put_nowait(event)


class Engine:
    def __init__(
        self,
        decoder: Decoder,
        *,
        eos_token_id: int | None,
        decode: Callable[[list[int]], str],
        max_batch: int,
        token_budget: int,
        gather_s: float,
        observe=None,
    ):
        self.batch = batch_for(decoder, eos_token_id, decode)
        self.context = decoder.context
        self.max_batch, self.token_budget, self.gather_s = max_batch, token_budget, gather_s
        self.observe = observe  # metrics hooks (aitale.serve.metrics.Metrics), or None
        self._waiting: deque[Job] = deque()
        self._jobs: dict[int, Job] = {}  # id(row) -> job, for the rows in the batch
        self._wake = threading.Condition()
        self._stopping = False
        self._outbox: list[tuple[Job, tuple]] = []  # the current step's events, sent together at its end
        self._thread = threading.Thread(target=self._run, name="aitale-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=10)

    @property
    def running(self) -> int:
        return len(self.batch)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, job: Job) -> None:
        with self._wake:
            self._waiting.append(job)
            self._wake.notify()

    def cancel(self, job: Job) -> None:
        """End the job at the next step boundary (a client that went away): its row is freed at once."""
        job.cancelled = True
        with self._wake:
            self._wake.notify()

    # --- the engine's thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not self._waiting and not self.batch.rows:
                    self._wake.wait()
                if self._stopping:
                    break
                if not self.batch.rows and self.gather_s:
                    self._wake.wait(self.gather_s)  # an idle engine gathers arrivals into one batch
            try:
                self._step()
            except Exception as err:  # noqa: BLE001 - a failing step fails its requests, never the engine
                log.exception("engine step failed")
                for job in list(self._jobs.values()):
                    job.post("error", err)
                self._jobs.clear()
                self.batch.remove(list(self.batch.rows))

    def _step(self) -> None:
        now = time.monotonic()
        self._drop_ended(now)
        admitted = self._admit(now)
        self._outbox: list[tuple[Job, tuple]] = []
        if admitted:
            for row in self.batch.admit([job.row for job in admitted]):
                self._finish(self._jobs.pop(id(row)))
        if self.batch.rows:
            if self.observe:
                self.observe.batch_size(len(self.batch))
            ended = self.batch.advance()
            for job in list(self._jobs.values()):
                self._send(job)
            for row in ended:
                self._finish(self._jobs.pop(id(row)))
        for job in admitted:  # rows that ended at their first token were finished above
            if id(job.row) in self._jobs:
                self._send(job)
        self._flush()

    def _flush(self) -> None:
        """The step's events, one wake-up per event loop rather than one per job."""
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for job, event in self._outbox:
            by_loop.setdefault(job.loop, []).append((job, event))
        for loop, events in by_loop.items():
            loop.call_soon_threadsafe(_deliver, events)
        self._outbox = []

    def _drop_ended(self, now: float) -> None:
        """Cancelled and timed-out rows leave before the step; so do waiting requests that gave up."""
        leaving = [job for job in self._jobs.values() if job.cancelled or now > job.deadline]
        if leaving:
            self.batch.remove([job.row for job in leaving], reason=CANCELLED)
            for job in leaving:
                del self._jobs[id(job.row)]
                job.post("error", TIMEOUT if not job.cancelled else CANCELLED)
                if self.observe and job.cancelled:
                    self.observe.cancelled()
        with self._wake:
            waiting = list(self._waiting)
            self._waiting = deque(job for job in waiting if not job.cancelled and now <= job.queue_deadline)
        for job in waiting:
            if job.cancelled:
                job.post("error", CANCELLED)
                if self.observe:
                    self.observe.cancelled()
            elif now > job.queue_deadline:
                job.post("error", TIMEOUT if now > job.deadline else QUEUE_TIMEOUT)

    def _admit(self, now: float) -> list[Job]:
        """The waiting jobs that fit: rows free, and the batch's prompt + new tokens within the budget."""
        used = sum(len(row.prompt) + row.settings.max_new_tokens for row in self.batch.rows)
        admitted = []
        with self._wake:
            while self._waiting and len(self.batch) + len(admitted) < self.max_batch:
                job = self._waiting[0]
                need = len(job.prompt) + job.settings.max_new_tokens
                if admitted or self.batch.rows:  # a lone request always runs, whatever it costs
                    if used + need > self.token_budget:
                        break
                self._waiting.popleft()
                used += need
                admitted.append(job)
        for job in admitted:
            job.started_at = now
            job.row = Row(list(job.prompt), job.settings, key=job, mask=job.mask)
            self._jobs[id(job.row)] = job
            if self.observe:
                self.observe.queue_wait(now - job.queued_at)
        return admitted

    def _send(self, job: Job) -> None:
        tokens = job.row.tokens
        if len(tokens) > job.sent:
            self._outbox.append((job, ("tokens", tokens[job.sent :])))
            job.sent = len(tokens)

    def _finish(self, job: Job) -> None:
        self._send(job)
        self._outbox.append((job, ("end", job.row)))
