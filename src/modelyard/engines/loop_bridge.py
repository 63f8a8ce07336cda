"""A private event loop on a background thread, for the synchronous engines.

:class:`~modelyard.engines.worker_engine.WorkerEngine` (a local version's worker) and
:class:`~modelyard.engines.remote_sync.RemoteEngine` (an endpoint version's replicas) give
commands that generate outside the gateway (``run``, ``eval``, ``pilot``, ``tune score``,
``bench --model``) the async engine providers the gateway uses, behind plain iterators.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import Event, Finish, Prompt, SamplingParams
from modelyard.engines.provider import EngineProvider

T = TypeVar("T")
_END = object()


class LoopBridge:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stream(
        self,
        provider: EngineProvider,
        version: ModelVersion,
        prompt: Prompt,
        params: SamplingParams,
    ) -> Iterator[Event]:
        """The events of one generation, as the provider's engine for ``version`` streams
        them; an error is raised here, and stopping early cancels the generation."""
        events: queue.Queue[Any] = queue.Queue()

        async def produce() -> None:
            try:
                async with provider.lease(version) as engine:
                    async for event in engine.stream(prompt, params):
                        events.put(event)
            except BaseException as exc:  # handed to the consuming thread, raised there
                events.put(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                events.put(_END)

        future = asyncio.run_coroutine_threadsafe(produce(), self.loop)
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

    def stop(self) -> None:
        """Stop the loop and its thread (after the caller closed what runs on it)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
