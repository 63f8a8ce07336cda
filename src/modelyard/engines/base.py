"""The Engine protocol: text in, a stream of text deltas and one finish event out.

An engine knows nothing of HTTP, keys or the registry. It is given a prompt (already
rendered from chat messages by the caller) and sampling parameters, and yields
:class:`TextDelta` events followed by exactly one :class:`Finish`. A consumer that stops
iterating early cancels the generation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finish:
    reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


Event = TextDelta | Finish


@runtime_checkable
class Engine(Protocol):
    @property
    def context_length(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def complete(self, prompt: str, params: SamplingParams) -> Iterator[Event]: ...

    def close(self) -> None: ...


def collect(events: Iterator[Event]) -> tuple[str, Finish]:
    """Drain a stream into its whole text and its finish event."""
    parts: list[str] = []
    for event in events:
        if isinstance(event, Finish):
            return "".join(parts), event
        parts.append(event.text)
    raise RuntimeError("engine stream ended without a Finish event")
