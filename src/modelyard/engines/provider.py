"""What the gateway needs from its engines: a streaming engine per model version.

:class:`~modelyard.engines.workers.WorkerPool` (llama-server processes) is the real provider;
:class:`~modelyard.engines.fake.FakeEngines` is the test double. A remote OpenAI-compatible
or llama.cpp engine fleet plugs in here as another provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import Event, Prompt, SamplingParams


class StreamingEngine(Protocol):
    def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Event]:
        """TextDelta events, then one Finish; closing the iterator cancels the generation."""
        ...

    async def count_tokens(self, prompt: Prompt) -> int: ...


class EngineProvider(Protocol):
    def lease(self, version: ModelVersion) -> AbstractAsyncContextManager[StreamingEngine]:
        """The engine for ``version`` (started if needed), held while the block runs."""
        ...

    async def prewarm(self, versions: list[ModelVersion]) -> None: ...

    def status(self) -> list[dict[str, Any]]: ...

    def describe(self) -> str:
        """One line for the startup log: which engine binary, backend and settings."""
        ...

    async def close(self) -> None: ...
