"""A synchronous :class:`~modelyard.engines.base.Engine` over an engine worker.

``modelyard run``, evaluation, pilots and ``tune score`` generate the way the gateway does:
through a ``llama-server`` worker for the version, with the same prompt handling. This facade
owns a private event loop on a background thread, starts the worker on first use and stops
it on :meth:`close`.
"""

from __future__ import annotations

import asyncio
import queue
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import Event, Finish, Prompt, SamplingParams
from modelyard.engines.workers import WorkerPool, model_context

T = TypeVar("T")
_END = object()


class WorkerEngine:
    def __init__(
        self, pool_factory: Any, version: ModelVersion, *, scratch: Path | None = None
    ) -> None:
        self.version = version
        self._scratch = scratch
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"engine {version.ref}", daemon=True
        )
        self._thread.start()
        self._pool: WorkerPool = self._run(self._make_pool(pool_factory))
        self._closed = False

    async def _make_pool(self, pool_factory: Any) -> WorkerPool:
        pool: WorkerPool = pool_factory()
        return pool

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def context_length(self) -> int:
        return model_context(self.version, self._pool.options.ctx_per_slot)

    def start(self) -> None:
        """Start the worker now (otherwise the first generation does)."""
        self._run(self._pool.prewarm([self.version]))

    def count_tokens(self, text: Prompt) -> int:
        async def count() -> int:
            async with self._pool.lease(self.version) as engine:
                return await engine.count_tokens(text)

        return self._run(count())

    def complete(self, prompt: Prompt, params: SamplingParams) -> Iterator[Event]:
        events: queue.Queue[Any] = queue.Queue()

        async def produce() -> None:
            try:
                async with self._pool.lease(self.version) as engine:
                    async for event in engine.stream(prompt, params):
                        events.put(event)
            except BaseException as exc:  # handed to the consuming thread, raised there
                events.put(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                events.put(_END)

        future = asyncio.run_coroutine_threadsafe(produce(), self._loop)
        try:
            while (item := events.get()) is not _END:
                if isinstance(item, BaseException):
                    if isinstance(item, asyncio.CancelledError):
                        return
                    raise item
                yield item
                if isinstance(item, Finish):
                    return
        finally:
            future.cancel()  # the consumer stopped early: closing the stream cancels it

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._pool.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
