"""The terminal handler (engine work through the scheduler) and the built-in metrics layer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Request

from modelyard.catalog.serving import ServedModel, resolve_for_serving
from modelyard.engines.base import Engine, Finish, TextDelta, TokenLogprob
from modelyard.errors import InvalidInput
from modelyard.gateway.pipeline import (
    ChoiceEvent,
    EmbeddingCall,
    EmbeddingResult,
    GenerationCall,
    Handler,
)
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal

DISCONNECT_POLL_S = 0.25


async def serve_model(gateway: Gateway, name: str, principal: Principal) -> ServedModel:
    """The one way a client's model name becomes a version (catalog.serving decides)."""

    def resolve() -> ServedModel:
        pilot = gateway.access_for(principal).pilot
        return resolve_for_serving(gateway.registry, name, pilot=pilot)

    return await asyncio.to_thread(resolve)


def _work(call: GenerationCall) -> Callable[[Engine], Iterator[ChoiceEvent]]:
    def run(engine: Engine) -> Iterator[ChoiceEvent]:
        for p_index, prompt in enumerate(call.prompts):
            params = call.params
            if call.max_tokens is None:
                room = engine.context_length - engine.count_tokens(prompt)
                if room < 1:
                    raise InvalidInput(
                        f"the prompt fills the model's context of {engine.context_length} tokens",
                        param="messages" if call.endpoint == "chat" else "prompt",
                        code="context_length_exceeded",
                    )
                params = replace(params, max_tokens=room)
            else:
                params = replace(params, max_tokens=call.max_tokens)
            for choice in range(call.n):
                seeded = params
                if params.seed is not None and choice:
                    seeded = replace(params, seed=params.seed + choice)
                for event in engine.complete(prompt, seeded):
                    yield ChoiceEvent(p_index * call.n + choice, event)

    return run


def engine_handler(gateway: Gateway) -> Handler:
    async def handle(call: GenerationCall) -> AsyncIterator[ChoiceEvent]:
        job = gateway.scheduler.submit(call.served.version, "generate", _work(call))
        try:
            async for item in job:
                yield item
        except (asyncio.CancelledError, GeneratorExit):
            gateway.metrics.cancelled.inc()  # the client went away mid-generation
            raise
        finally:
            gateway.scheduler.withdraw(job)  # stops the worker at its next token; no-op if done

    return handle


def metrics_layer(gateway: Gateway) -> Callable[[GenerationCall, Handler], AsyncIterator[Any]]:
    async def layer(call: GenerationCall, inner: Handler) -> AsyncIterator[ChoiceEvent]:
        started = time.monotonic()
        first = True
        model = call.served.version.ref
        async for item in inner(call):
            if first and isinstance(item.event, TextDelta) and item.event.text:
                gateway.metrics.ttft.labels(model).observe(time.monotonic() - started)
                first = False
            if isinstance(item.event, Finish):
                if item.index % call.n == 0:
                    gateway.metrics.tokens_in.labels(model).inc(item.event.prompt_tokens)
                gateway.metrics.tokens_out.labels(model).inc(item.event.completion_tokens)
            yield item

    return layer


def embedding_handler(gateway: Gateway) -> Callable[[EmbeddingCall], Any]:
    async def handle(call: EmbeddingCall) -> EmbeddingResult:
        def work(engine: Any) -> Iterator[EmbeddingResult]:
            vectors, tokens = engine.embed(list(call.inputs))
            yield EmbeddingResult(vectors, tokens)

        job = gateway.scheduler.submit(call.served.version, "embed", work)
        try:
            async for result in job:
                gateway.metrics.tokens_in.labels(call.served.version.ref).inc(result.prompt_tokens)
                return result
        finally:
            gateway.scheduler.withdraw(job)
        raise RuntimeError("embedding job ended without a result")

    return handle


@dataclass
class ChoiceResult:
    text: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish: Finish | None = None


async def first_event(stream: AsyncIterator[ChoiceEvent]) -> ChoiceEvent | None:
    """Wait for the first event so that errors become a proper status before streaming."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


async def collect_choices(
    stream: AsyncIterator[ChoiceEvent], count: int, request: Request
) -> list[ChoiceResult]:
    """Drain a generation, stopping it if the client disconnects meanwhile."""
    results = [ChoiceResult() for _ in range(count)]

    async def drain() -> None:
        async for item in stream:
            result = results[item.index]
            if isinstance(item.event, Finish):
                result.finish = item.event
            else:
                result.text.append(item.event.text)
                result.logprobs.extend(item.event.logprobs)

    task = asyncio.create_task(drain())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return results
        await task
    finally:
        if not task.done():
            task.cancel()
    return results


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
