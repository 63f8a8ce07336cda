"""The Engine protocol: text in, a stream of text deltas and one finish event out.

An engine knows nothing of HTTP, keys or the registry. It is given a prompt (already
rendered from chat messages by the caller) and sampling parameters, and yields
:class:`TextDelta` events followed by exactly one :class:`Finish`. A consumer that stops
iterating early cancels the generation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class PromptPart:
    """One piece of a rendered prompt.

    ``special=True`` marks text the chat template wrote: strings such as ``<start_of_turn>``
    in it become the model's control tokens. ``special=False`` marks text a user supplied
    (message content): it is tokenized literally, so it can never forge a turn.
    """

    text: str
    special: bool


Prompt = str | tuple[PromptPart, ...]
"""A plain string is a raw prompt (text completions, eval inputs): control-token strings in it
are parsed, as a raw prompt's author intends. Chat prompts are parts."""


@dataclass(frozen=True)
class MessageStart(PromptPart):
    """Opens one chat message in a *messages prompt*: the chat kept as messages for an engine
    that applies its own template (a remote endpoint), not rendered here.

    Its ``text`` is a readable header (``"user: "``), ``special=True``, so the PII screen
    leaves it alone and the audit log reads a transcript; the message's text follows as
    ordinary (``special=False``) parts, screened and redacted like any user text."""

    role: str = "user"
    fields: tuple[tuple[str, str], ...] = ()
    """The message's other fields (``name``, ``tool_call_id``…), each as JSON text."""


def is_messages(prompt: Prompt) -> bool:
    """Whether ``prompt`` is a messages prompt (see :class:`MessageStart`)."""
    return not isinstance(prompt, str) and bool(prompt) and isinstance(prompt[0], MessageStart)


def prompt_text(prompt: Prompt) -> str:
    """The prompt as one string (for display, hashing and token estimates)."""
    if isinstance(prompt, str):
        return prompt
    return "".join(part.text for part in prompt)


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None
    """None: no log-probabilities; N >= 0: each token's own plus its N most likely rivals."""
    json_schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    """A JSON schema the output must follow (JSON mode, structured outputs)."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias) pairs added to the logits before sampling."""


@dataclass(frozen=True)
class TopLogprob:
    token: str
    logprob: float
    token_bytes: bytes


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    token_bytes: bytes
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class TextDelta:
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()
    """The tokens behind this delta (only when SamplingParams.logprobs is set)."""


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

    def complete(self, prompt: Prompt, params: SamplingParams) -> Iterator[Event]: ...

    def close(self) -> None: ...


def collect(events: Iterator[Event]) -> tuple[str, Finish]:
    """Drain a stream into its whole text and its finish event."""
    parts: list[str] = []
    for event in events:
        if isinstance(event, Finish):
            return "".join(parts), event
        parts.append(event.text)
    raise RuntimeError("engine stream ended without a Finish event")
