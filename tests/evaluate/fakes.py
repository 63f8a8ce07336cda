"""Fakes for fast evaluation tests: a scorer with a fixed table, an engine that can fail."""

from __future__ import annotations

from collections.abc import Iterator

from modelyard.engines.base import Event, Prompt, SamplingParams, prompt_text
from modelyard.engines.fake import FakeEngine
from modelyard.engines.scoring import LogLikelihood, TokenNll


class TableScorer:
    """log P(continuation | context) looked up by the continuation's stripped text."""

    def __init__(self, table: dict[str, float], default: float = -10.0) -> None:
        self.table = table
        self.default = default
        self.calls: list[tuple[str, str]] = []
        self.closed = False

    @property
    def context_length(self) -> int:
        return 512

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return ([1] if add_bos else []) + [len(w) for w in text.split()]

    def loglikelihood(self, context: Prompt, continuation: str) -> LogLikelihood:
        self.calls.append((context, continuation))
        value = self.table.get(continuation.strip(), self.default)
        return LogLikelihood(value, 1, False)

    def token_nll(self, tokens: list[int]) -> TokenNll:
        return TokenNll(float(len(tokens) - 1), len(tokens) - 1)

    def close(self) -> None:
        self.closed = True


class EchoEngine(FakeEngine):
    """Answers each prompt with ``replies[prompt]`` and counts what it was asked."""

    def __init__(self, replies: dict[str, str], fail_after: int | None = None) -> None:
        super().__init__()
        self.replies = replies
        self.fail_after = fail_after
        self.received: list[tuple[Prompt, SamplingParams]] = []

    def complete(self, prompt: Prompt, params: SamplingParams) -> Iterator[Event]:
        if self.fail_after is not None and len(self.prompts) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.received.append((prompt, params))
        text = prompt_text(prompt)
        self.reply = self.replies.get(text, "no idea")
        return super().complete(text, params)
