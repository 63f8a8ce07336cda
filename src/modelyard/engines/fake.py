"""Deterministic engines for fast tests: they answer with a fixed script, word by word.

:class:`FakeEngine` is the synchronous :class:`~modelyard.engines.base.Engine`;
:class:`FakeEngines` stands in for the engine-worker pool (an
:class:`~modelyard.engines.provider.EngineProvider`) in gateway unit tests. The tests that
matter run against real workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import Event, Finish, Prompt, SamplingParams, TextDelta, prompt_text
from modelyard.engines.stops import StopMatcher


class FakeEngine:
    def __init__(self, reply: str = "Paris is the capital of France.", context: int = 2048):
        self.reply = reply
        self._context = context
        self.closed = False
        self.prompts: list[str] = []

    @property
    def context_length(self) -> int:
        return self._context

    def count_tokens(self, text: Prompt) -> int:
        return len(prompt_text(text).split())

    def complete(self, prompt: Prompt, params: SamplingParams) -> Iterator[Event]:
        prompt = prompt_text(prompt)
        self.prompts.append(prompt)
        words = self.reply.split(" ")
        matcher = StopMatcher(params.stop)
        produced = 0
        for index, word in enumerate(words):
            if 0 <= params.max_tokens <= produced:
                yield TextDelta(matcher.flush())
                yield Finish("length", self.count_tokens(prompt), produced)
                return
            produced += 1
            emit, stopped = matcher.feed(word if index == 0 else " " + word)
            if emit:
                yield TextDelta(emit)
            if stopped:
                yield Finish("stop", self.count_tokens(prompt), produced)
                return
        if rest := matcher.flush():
            yield TextDelta(rest)
        yield Finish("stop", self.count_tokens(prompt), produced)

    def close(self) -> None:
        self.closed = True


class FakeStreamingEngine:
    """A FakeEngine behind the async streaming interface of an engine worker."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    async def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Event]:
        for event in self.engine.complete(prompt, params):
            yield event

    async def count_tokens(self, prompt: Prompt) -> int:
        return self.engine.count_tokens(prompt)


class FakeEngines:
    """An engine provider whose engines are FakeEngines, one per version (made on first use)."""

    def __init__(self, make: Callable[[ModelVersion], FakeEngine]) -> None:
        self._make = make
        self.engines: dict[str, FakeEngine] = {}

    @contextlib.asynccontextmanager
    async def lease(self, version: ModelVersion) -> AsyncIterator[FakeStreamingEngine]:
        engine = self.engines.get(version.digest)
        if engine is None:
            engine = self.engines[version.digest] = self._make(version)
        yield FakeStreamingEngine(engine)

    async def prewarm(self, versions: list[ModelVersion]) -> None:
        return None

    def status(self) -> list[dict[str, Any]]:
        return [{"model": d, "state": "ready"} for d in self.engines]

    def describe(self) -> str:
        return "fake engines (tests)"

    async def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
