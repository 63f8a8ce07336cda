"""Runs batches in a gateway process, at a lower priority than interactive requests.

Each gateway process runs one :class:`BatchRunner` (started and stopped with the app). It
claims the oldest active batch whose lease is free (``batch/store.py``), renews the lease
while it works, and runs the batch's pending lines in order through the app itself
(``batch/dispatch.py``), as the key that created the batch: every line is authorised,
limited, charged and audited like any request.

**Priority.** With batch workers (``idle`` mode, the CPU default), at most
``batch_concurrency`` lines are in flight and they run on workers at the kernel's idle CPU
priority (``engines/worker_options.batch_pool_from_settings``): interactive work gets the CPU
first. Without them (``shared`` mode), a line starts only while the interactive workers'
slots are idle: fewer than ``worker_slots - batch_reserved_slots`` running, nothing waiting,
and fewer than ``batch_concurrency`` lines in flight; when an interactive request has to wait
for a slot anyway, the newest line is stopped (as a disconnected client's request is) and run
again later: interactive requests never queue behind a batch.

**Durability.** A line's answer is stored with its ``done`` status in one transaction; a
restarted or replacement process resumes with the lines still pending, never redoing a
finished one (a line stopped mid-run by a crash is run again). 429s wait for their
``Retry-After`` (budgets and rate limits apply to batches too); 5xx answers are tried
``batch_max_attempts`` times. Cancelling lets the lines in flight finish; lines never run
are closed as ``batch_cancelled`` (or ``batch_expired`` once the completion window ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.types import ASGIApp

from modelyard.batch.dispatch import Answer, dispatch
from modelyard.batch.store import BatchStore, PendingLine
from modelyard.errors import ModelyardError, Unauthorized
from modelyard.gateway.errors import from_modelyard
from modelyard.gateway.pipeline import BatchOrigin
from modelyard.gateway.state import Gateway
from modelyard.store.tables import utcnow

log = logging.getLogger(__name__)

TICK_S = 0.02
"""How often a running batch looks at the slots (to start or preempt a line)."""
FETCH = 64
"""Pending lines read at a time."""
MAX_RETRY_AFTER_S = 30.0
"""A 429's wait is capped so that a cancel or the window's end is seen soon."""


@dataclass
class _InFlight:
    line: PendingLine
    task: asyncio.Task[None]
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class BatchRunner:
    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.settings = gateway.settings
        self.store = BatchStore(gateway.db, clock)
        self.clock = clock
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batch-runner")

    async def stop(self) -> None:
        """Stop: lines in flight are stopped and stay pending; the lease is released."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            batch_id = None
            try:
                batch_id = await asyncio.to_thread(
                    self.store.claim, self.owner, self.settings.batch_lease_s
                )
                if batch_id is not None:
                    await _Run(self, batch_id).run()
            except ModelyardError as exc:
                log.warning("batch runner: %s", exc.message)
            except Exception:  # the runner outlives any one batch's failure; it is logged
                log.exception("batch runner: batch %s failed", batch_id)
            finally:
                if batch_id is not None:
                    with contextlib.suppress(ModelyardError):
                        await asyncio.to_thread(self.store.release, batch_id, self.owner)
            if batch_id is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.batch_poll_s)


class _Run:
    """One batch, while this process holds its lease."""

    def __init__(self, runner: BatchRunner, batch_id: str) -> None:
        self.runner = runner
        self.store = runner.store
        self.settings = runner.settings
        self.admission = runner.gateway.admission
        self.metrics = runner.gateway.metrics
        self.batch_id = batch_id
        self.in_flight: dict[int, _InFlight] = {}
        self.queue: list[PendingLine] = []
        self.cursor = 0
        self.status = "in_progress"
        self.exhausted = False
        """No pending line was left to start when last looked (until a line ends)."""

    async def run(self) -> None:
        batch = await asyncio.to_thread(self.store.get, None, self.batch_id)
        self.status, expires, owner_key = batch.status, batch.expires_at, batch.owner_key_id
        self.endpoint, self.owner_key = batch.endpoint, owner_key
        renewed = time.monotonic()
        try:
            while True:
                if time.monotonic() - renewed > self.settings.batch_lease_s / 3:
                    status = await asyncio.to_thread(
                        self.store.renew,
                        self.batch_id,
                        self.runner.owner,
                        self.settings.batch_lease_s,
                    )
                    if status is None:  # the lease lapsed and another process took it
                        return
                    self.status, renewed = status, time.monotonic()
                if self.runner.stopping or self.status not in ("in_progress", "cancelling"):
                    return  # stopping, or closed elsewhere meanwhile
                if self.status == "cancelling":
                    await self._finish("cancelled", stop_lines=False)
                    return
                if self.runner.clock() >= expires:
                    await self._finish("expired", stop_lines=True)
                    return
                self._preempt()
                if not self.queue and (self.exhausted or not await self._refill()):
                    if not self.in_flight:
                        await self._finish("completed", stop_lines=False)
                        return
                elif self.queue and self._idle():
                    # read the status before each line: a cancel stops the next one
                    status = await asyncio.to_thread(self.store.status, self.batch_id)
                    self.status = status or "gone"
                    if self.status == "in_progress":
                        self._start(self.queue.pop(0))
                    continue
                await asyncio.sleep(TICK_S)
        finally:
            await self._stop_lines()

    async def _refill(self) -> bool:
        """Queue the next pending lines not in flight; from the start again at the end, for
        lines preempted or left behind. False when there is nothing left to start."""
        for after in (self.cursor, 0):
            lines = await asyncio.to_thread(
                self.store.pending, self.batch_id, after=after, limit=FETCH + len(self.in_flight)
            )
            lines = [ln for ln in lines if ln.line_no not in self.in_flight]
            if lines:
                self.queue = lines[:FETCH]
                self.cursor = self.queue[-1].line_no
                return True
            if after == 0:
                break
        self.exhausted = True
        return False

    def _idle(self) -> bool:
        """May another line start? With batch workers of their own (``idle`` mode), while
        fewer than ``batch_concurrency`` are in flight (the kernel gives interactive work the
        CPU first); else only while the interactive workers have slots to spare."""
        settings = self.settings
        if self.runner.gateway.batch_workers is not None:
            return len(self.in_flight) < settings.batch_concurrency
        limit = settings.worker_slots - settings.batch_reserved_slots
        return (
            len(self.in_flight) < settings.batch_concurrency
            and self.admission.waiting() == 0
            and self.admission.running() < max(1, limit)
        )

    def _preempt(self) -> None:
        """Requests wait for a slot: stop the newest line still running, one per waiting
        request (a stopped line frees its slot once its route sees the disconnect)."""
        waiting = self.admission.waiting()
        if not self.in_flight or waiting == 0 or self.runner.gateway.batch_workers is not None:
            return
        running = [f for f in self.in_flight.values() if not f.stop.is_set()]
        if running and len(self.in_flight) - len(running) < waiting:
            newest = max(running, key=lambda f: f.line.line_no)
            newest.stop.set()
            self.metrics.batch_lines.labels("preempted").inc()

    def _start(self, line: PendingLine) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._line(line, stop))
        self.in_flight[line.line_no] = _InFlight(line, task, stop)
        task.add_done_callback(lambda done: self._ended(line.line_no, done))

    def _ended(self, line_no: int, task: asyncio.Task[None]) -> None:
        self.in_flight.pop(line_no, None)
        self.exhausted = False  # a line stopped or failed before recording is pending again
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("batch %s line %d: %s (it stays pending)", self.batch_id, line_no, exc)

    async def _line(self, line: PendingLine, stop: asyncio.Event) -> None:
        attempts = line.attempts
        origin = BatchOrigin(self.batch_id, line.line_no)
        body = line.body.encode("utf-8")
        while not stop.is_set():
            try:
                principal = await asyncio.to_thread(
                    self.runner.gateway.keys.principal_for, self.owner_key
                )
            except Unauthorized as exc:
                await self._record(line, Answer(401, {}, bytes(from_modelyard(exc).body)))
                return
            answer = await dispatch(
                self.runner.app,
                url=self.endpoint,
                body=body,
                principal=principal,
                origin=origin,
                stop=stop,
            )
            if stop.is_set():
                return  # preempted or shutting down: not recorded, run again later
            if answer.status == 429:
                await _wait(stop, _retry_after(answer))
                continue
            if answer.status >= 500 and attempts + 1 < self.settings.batch_max_attempts:
                attempts += 1
                await asyncio.to_thread(self.store.attempted, self.batch_id, line.line_no)
                self.metrics.batch_lines.labels("retried").inc()
                await _wait(stop, min(2.0**attempts, MAX_RETRY_AFTER_S))
                continue
            await self._record(line, answer)
            return

    async def _record(self, line: PendingLine, answer: Answer) -> None:
        await asyncio.to_thread(
            self.store.record,
            self.batch_id,
            line.line_no,
            status_code=answer.status,
            request_id=answer.request_id,
            response=answer.json_text(),
        )
        self.metrics.batch_lines.labels("done").inc()

    async def _stop_lines(self) -> None:
        for flight in list(self.in_flight.values()):
            flight.stop.set()
        await self._drain()

    async def _drain(self) -> None:
        tasks = [f.task for f in self.in_flight.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _finish(self, outcome: str, *, stop_lines: bool) -> None:
        """Let (or make) the lines in flight end, then close the batch as ``outcome``."""
        if stop_lines:
            await self._stop_lines()
        await self._drain()
        await asyncio.to_thread(self.store.finalize, self.batch_id, outcome)


def _retry_after(answer: Answer) -> float:
    try:
        wait = float(answer.headers.get("retry-after", "1"))
    except ValueError:
        wait = 1.0
    return max(0.05, min(wait, MAX_RETRY_AFTER_S))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
