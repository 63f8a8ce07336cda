"""A synchronous :class:`~modelyard.engines.base.Engine` over an engine worker.

``modelyard run``, evaluation, pilots and ``tune score`` generate the way the gateway does:
through a ``llama-server`` worker for the version, with the same prompt handling. This facade
owns a private event loop on a background thread, starts the worker on first use and stops
it on :meth:`close`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import Event, Prompt, SamplingParams
from modelyard.engines.loop_bridge import LoopBridge
from modelyard.engines.workers import WorkerPool, model_context


class WorkerEngine:
    def __init__(
        self, pool_factory: Any, version: ModelVersion, *, scratch: Path | None = None
    ) -> None:
        self.version = version
        self._scratch = scratch
        self._bridge = LoopBridge(f"engine {version.ref}")
        self._pool: WorkerPool = self._bridge.run(self._make_pool(pool_factory))
        self._closed = False

    async def _make_pool(self, pool_factory: Any) -> WorkerPool:
        pool: WorkerPool = pool_factory()
        return pool

    @property
    def context_length(self) -> int:
        return model_context(self.version, self._pool.options.ctx_per_slot)

    def start(self) -> None:
        """Start the worker now (otherwise the first generation does)."""
        self._bridge.run(self._pool.prewarm([self.version]))

    def count_tokens(self, text: Prompt) -> int:
        async def count() -> int:
            async with self._pool.lease(self.version) as engine:
                return await engine.count_tokens(text)

        return self._bridge.run(count())

    def complete(self, prompt: Prompt, params: SamplingParams) -> Iterator[Event]:
        return self._bridge.stream(self._pool, self.version, prompt, params)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._bridge.run(self._pool.close())
        finally:
            self._bridge.stop()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
