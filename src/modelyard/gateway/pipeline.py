"""The request path around the engine call, as a list of layers.

A generation request becomes a :class:`GenerationCall`; a chain of layers, each an async
generator ``layer(call, next) -> events``, wraps the terminal handler that runs the engine
through the scheduler. A layer may refuse the call (raise a ``ModelyardError``), change it
(``next(dataclasses.replace(call, ...))``), watch or rewrite the events, or answer without
calling ``next`` at all (a cache). Limits, PII, cache and audit plug in here::

    gateway.generation_layers = [metrics_layer, limits, pii, cache, audit]  # outermost first

Embeddings use the same shape with :class:`EmbeddingCall` and an awaitable result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelyard.catalog.serving import ServedModel
from modelyard.engines.base import Event, Prompt, SamplingParams
from modelyard.governance.keys import Principal


@dataclass(frozen=True)
class BatchOrigin:
    """A request run for a line of a batch (``batch/runner.py``): set by the server in the
    request's scope, never by a client; the audit record names the batch and line."""

    batch_id: str
    line_no: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.batch_id, "line": self.line_no}


@dataclass(frozen=True)
class GenerationCall:
    endpoint: str
    """``chat`` or ``completions``."""
    request_id: str
    principal: Principal
    served: ServedModel
    prompts: tuple[Prompt, ...]
    """Rendered prompts (a chat has one, in parts; a completions request may batch several)."""
    params: SamplingParams
    max_tokens: int | None
    """As the client asked; None means "up to the end of the context"."""
    n: int = 1
    user: str | None = None
    client: str | None = None
    """The client's address (for the audit record)."""
    body: dict[str, Any] = field(default_factory=dict)
    """The validated request body (messages, prompt…), for layers that need the text."""
    cache: CacheNote | None = None
    """The response cache's note for this call (``gateway/response_cache.py``); None: off."""
    batch: BatchOrigin | None = None
    """The batch line this request runs for; None: an interactive request."""


@dataclass
class CacheNote:
    """What the response cache does with one call: the route makes it from the request's
    ``X-Modelyard-Cache`` header, governance fills in the tenant and TTL from the key's and
    team's settings, the cache layer sets ``status`` (read back for the audit record and the
    response header)."""

    directive: str | None = None
    """The request's ``X-Modelyard-Cache`` header: ``no-cache`` or ``no-store`` (or None)."""
    tenant: str | None = None
    """``team:NAME``, else ``key:NAME``: entries are never shared across tenants."""
    ttl_s: int | None = None
    """How long an entry lives; None: the cache is off for this key."""
    status: str = "off"
    """``off``, ``bypass``, ``miss`` or ``hit``."""


@dataclass(frozen=True)
class ChoiceEvent:
    index: int
    event: Event


@dataclass(frozen=True)
class EmbeddingCall:
    request_id: str
    principal: Principal
    served: ServedModel
    inputs: tuple[str, ...]
    user: str | None = None
    client: str | None = None
    batch: BatchOrigin | None = None


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[list[float]]
    prompt_tokens: int


Handler = Callable[[GenerationCall], AsyncIterator[ChoiceEvent]]
Layer = Callable[[GenerationCall, Handler], AsyncIterator[ChoiceEvent]]
EmbeddingHandler = Callable[[EmbeddingCall], Awaitable[EmbeddingResult]]
EmbeddingLayer = Callable[[EmbeddingCall, EmbeddingHandler], Awaitable[EmbeddingResult]]


def compose(layers: Sequence[Layer], terminal: Handler) -> Handler:
    """``layers[0]`` is outermost: it sees the call first and the events last."""
    handler = terminal
    for layer in reversed(layers):
        handler = _bind(layer, handler)
    return handler


def _bind(layer: Layer, inner: Handler) -> Handler:
    def bound(call: GenerationCall) -> AsyncIterator[ChoiceEvent]:
        return layer(call, inner)

    return bound


def compose_embeddings(
    layers: Sequence[EmbeddingLayer], terminal: EmbeddingHandler
) -> EmbeddingHandler:
    handler = terminal
    for layer in reversed(layers):
        handler = _bind_embedding(layer, handler)
    return handler


def _bind_embedding(layer: EmbeddingLayer, inner: EmbeddingHandler) -> EmbeddingHandler:
    def bound(call: EmbeddingCall) -> Awaitable[EmbeddingResult]:
        return layer(call, inner)

    return bound
