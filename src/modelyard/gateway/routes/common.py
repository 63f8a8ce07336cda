"""What chat and completions share: admission checks and building the generation call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from modelyard.engines.base import SamplingParams
from modelyard.errors import InvalidInput
from modelyard.gateway.generation import engine_handler, first_event, metrics_layer
from modelyard.gateway.pipeline import BatchOrigin, ChoiceEvent, GenerationCall, compose
from modelyard.gateway.schemas import _Sampling
from modelyard.gateway.state import Gateway

TOP_K = 40
"""OpenAI's API has no top-k; the engine keeps llama.cpp's usual 40 candidates."""


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def check_n(gateway: Gateway, n: int, prompts: int = 1) -> None:
    limit = gateway.settings.gateway_max_n
    if n > limit:
        raise InvalidInput(f"n must be at most {limit}", param="n", code="n_too_large")
    if n * prompts > limit * 4:
        raise InvalidInput(
            f"n times the number of prompts must be at most {limit * 4}", param="prompt"
        )


def sampling(body: _Sampling, *, stops: tuple[str, ...] = (), **extra: Any) -> SamplingParams:
    body.refuse_unsupported()
    return SamplingParams(
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=TOP_K,
        seed=body.seed,
        stop=body.stops() + stops,
        logit_bias=body.bias(),
        **extra,
    )


async def start_generation(
    gateway: Gateway, call: GenerationCall
) -> tuple[ChoiceEvent | None, AsyncIterator[ChoiceEvent]]:
    """Run the call through the layers; wait for the first event (errors surface here)."""
    handler = compose([metrics_layer(gateway), *gateway.generation_layers], engine_handler(gateway))
    stream = handler(call)
    try:
        first = await first_event(stream)
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise
    return first, stream


async def chain(
    first: ChoiceEvent | None, rest: AsyncIterator[ChoiceEvent]
) -> AsyncIterator[ChoiceEvent]:
    try:
        if first is not None:
            yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


def batch_origin(request: Request) -> BatchOrigin | None:
    """The batch line a request runs for (set by the server, never by a client)."""
    origin = getattr(request.state, "batch", None)
    return origin if isinstance(origin, BatchOrigin) else None


def response_headers(request: Request, served_headers: dict[str, str]) -> dict[str, str]:
    return {"X-Request-Id": request.state.request_id, **served_headers}
