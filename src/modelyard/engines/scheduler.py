"""Run in-process engine work off the event loop: a bounded queue, threads, an LRU model pool.

The gateway uses it for embedding models, which run in process; generation runs in engine
workers (``engines/workers.py``).

* :class:`ModelPool` loads engines lazily, one per worker slot that needs the model (a
  llama.cpp context is never shared between two generations), and closes the
  least-recently-used idle ones when a memory budget would be exceeded.
* :class:`Scheduler` admits work into a bounded queue (``RateLimited`` — HTTP 429 with
  ``Retry-After`` — when it is full), runs it on a fixed set of worker threads, and streams
  what the work yields back to the event loop through a :class:`Job`. Cancelling a job (the
  client went away) stops the work at its next item and frees the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from modelyard.catalog.records import ModelVersion
from modelyard.errors import EngineFault, ModelyardError, RateLimited, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
ModelKind = Literal["generate", "embed"]
Loader = Callable[[ModelVersion, ModelKind], Any]

_OVERHEAD_BYTES = 64 * 1024 * 1024


def estimate_bytes(version: ModelVersion) -> int:
    """Memory a loaded copy is assumed to take: its weights plus caches and buffers."""
    return int(version.size_bytes * 1.1) + _OVERHEAD_BYTES


@dataclass
class _Entry:
    digest: str
    kind: ModelKind
    ref: str
    size: int
    engine: Any = None
    busy: bool = True
    last_used: float = field(default_factory=time.monotonic)


class ModelPool:
    def __init__(self, loader: Loader, *, budget_bytes: int) -> None:
        self._loader = loader
        self._budget = budget_bytes
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    @contextlib.contextmanager
    def lease(self, version: ModelVersion, kind: ModelKind) -> Iterator[Any]:
        entry = self._acquire(version, kind)
        try:
            yield entry.engine
        finally:
            with self._lock:
                entry.busy = False
                entry.last_used = time.monotonic()

    def _acquire(self, version: ModelVersion, kind: ModelKind) -> _Entry:
        with self._lock:
            for entry in self._entries:
                same = entry.digest == version.digest and entry.kind == kind
                if same and not entry.busy and entry.engine is not None:
                    entry.busy = True
                    return entry
            entry = _Entry(version.digest, kind, version.ref, estimate_bytes(version))
            evicted = self._make_room(entry.size)
            self._entries.append(entry)
        for old in evicted:
            log.info("unloading %s (%s) to stay within the memory budget", old.ref, old.kind)
            old.engine.close()
        try:
            entry.engine = self._loader(version, kind)
        except BaseException:
            with self._lock:
                self._entries.remove(entry)
            raise
        return entry

    def _make_room(self, size: int) -> list[_Entry]:
        idle = sorted((e for e in self._entries if not e.busy), key=lambda e: e.last_used)
        in_use = self._used() - sum(e.size for e in idle)
        if in_use + size > self._budget and in_use > 0:
            raise Unavailable(
                "the gateway's memory budget is taken by models in use; retry shortly",
                code="memory_budget_exhausted",
            )
        evicted = []
        while self._used() + size > self._budget and idle:
            victim = idle.pop(0)
            self._entries.remove(victim)
            evicted.append(victim)
        return evicted

    def _used(self) -> int:
        return sum(e.size for e in self._entries)

    def loaded(self) -> list[tuple[str, str, int]]:
        """``(ref, kind, copies)`` for every loaded model."""
        with self._lock:
            counts: dict[tuple[str, str], int] = {}
            for entry in self._entries:
                if entry.engine is not None:
                    counts[(entry.ref, entry.kind)] = counts.get((entry.ref, entry.kind), 0) + 1
        return [(ref, kind, n) for (ref, kind), n in sorted(counts.items())]

    def used_bytes(self) -> int:
        with self._lock:
            return self._used()

    def close(self) -> None:
        with self._lock:
            entries, self._entries = self._entries, []
        for entry in entries:
            if entry.engine is not None:
                entry.engine.close()


_ITEM, _ERROR, _DONE = "item", "error", "done"


class Job(Generic[T]):
    """One admitted piece of work; the event loop side iterates what it yields."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        version: ModelVersion,
        kind: ModelKind,
        work: Callable[[Any], Iterator[T]],
    ) -> None:
        self.loop = loop
        self.version = version
        self.kind = kind
        self.work = work
        self.cancelled = threading.Event()
        self.enqueued_at = time.monotonic()
        self.started_at: float | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def push(self, kind: str, value: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()

    def __aiter__(self) -> Job[T]:
        return self

    async def __anext__(self) -> T:
        kind, value = await self._queue.get()
        if kind == _ITEM:
            return value  # type: ignore[no-any-return]
        if kind == _ERROR:
            raise value
        raise StopAsyncIteration


class Scheduler:
    def __init__(
        self, pool: ModelPool, *, workers: int, queue_size: int, retry_after_s: int
    ) -> None:
        self.pool = pool
        self.workers = workers
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self._cond = threading.Condition()
        self._waiting: deque[Job[Any]] = deque()
        self._busy = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(
                target=self._worker, name=f"modelyard-worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            for job in self._waiting:
                job.cancel()
                job.push(_ERROR, Unavailable("the gateway is shutting down"))
            self._waiting.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        self.pool.close()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> int:
        return self._busy

    def submit(
        self, version: ModelVersion, kind: ModelKind, work: Callable[[Any], Iterator[T]]
    ) -> Job[T]:
        """Admit work or raise ``RateLimited`` when every slot is busy and the queue is full."""
        job: Job[T] = Job(asyncio.get_running_loop(), version, kind, work)
        with self._cond:
            if self._stopping:
                raise Unavailable("the gateway is shutting down")
            if len(self._waiting) >= self.queue_size + (self.workers - self._busy):
                raise RateLimited(
                    f"the gateway is at capacity ({self.workers} running, "
                    f"{len(self._waiting)} waiting); retry after {self.retry_after_s}s",
                    retry_after_s=self.retry_after_s,
                    code="queue_full",
                )
            self._waiting.append(job)
            self._cond.notify()
        return job

    def withdraw(self, job: Job[Any]) -> None:
        """Cancel a job; if it is still waiting, give its place in the queue back at once."""
        job.cancel()
        with self._cond, contextlib.suppress(ValueError):
            self._waiting.remove(job)

    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._waiting.popleft()
                self._busy += 1
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._busy -= 1

    def _run(self, job: Job[Any]) -> None:
        if job.cancelled.is_set():
            job.push(_DONE)
            return
        job.started_at = time.monotonic()
        try:
            with self.pool.lease(job.version, job.kind) as engine:
                stream = job.work(engine)
                try:
                    for item in stream:
                        if job.cancelled.is_set():
                            break
                        job.push(_ITEM, item)
                finally:
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
        except ModelyardError as exc:
            job.push(_ERROR, exc)
        except Exception as exc:
            log.exception("engine work for %s failed", job.version.ref)
            job.push(_ERROR, EngineFault(f"the engine failed: {type(exc).__name__}: {exc}"))
        else:
            job.push(_DONE)
