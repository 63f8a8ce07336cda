"""A deterministic engine for fast tests: it answers with a fixed script, word by word."""

from __future__ import annotations

from collections.abc import Iterator

from modelyard.engines.base import Event, Finish, SamplingParams, TextDelta
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

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def complete(self, prompt: str, params: SamplingParams) -> Iterator[Event]:
        self.prompts.append(prompt)
        words = self.reply.split(" ")
        matcher = StopMatcher(params.stop)
        produced = 0
        for index, word in enumerate(words):
            if produced >= params.max_tokens:
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
