"""The terminal handler (engine workers) and the built-in metrics layer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Request

from modelyard.catalog.serving import ServedModel, resolve_for_serving
from modelyard.engines.base import Finish, Prompt, SamplingParams, TextDelta, TokenLogprob
from modelyard.engines.endpoints import is_endpoint
from modelyard.engines.provider import EngineProvider, StreamingEngine
from modelyard.engines.remote_provider import max_in_flight
from modelyard.engines.workers import model_context
from modelyard.errors import InvalidInput
from modelyard.gateway.pipeline import (
    ChoiceEvent,
    EmbeddingCall,
    EmbeddingResult,
    GenerationCall,
    Handler,
)
from modelyard.gateway.state import Gateway
from modelyard.gateway.usage import choice_usage
from modelyard.governance.keys import Principal
from modelyard.store.generation_tables import read_generations

DISCONNECT_POLL_S = 0.25


async def serve_model(gateway: Gateway, name: str, principal: Principal) -> ServedModel:
    """The one way a client's model name becomes a version (catalog.serving decides)."""

    def resolve() -> ServedModel:
        with gateway.db.reads() as session:  # one connection for the request's reads
            # The counters and access the key check read (gateway.auth.check_key), else now:
            # before the rows either way (see store.generation_tables).
            counters = principal.generations or read_generations(session)
            access = principal.access
            if principal.generations is None or access is None:
                access = gateway.access_for(principal, session, counters.access)
            pilot = access.pilot
            view = gateway.serving_cache.view(session, counters.catalog)
            return resolve_for_serving(gateway.registry, name, pilot=pilot, view=view)

    return await asyncio.to_thread(resolve)


def _jobs(call: GenerationCall) -> list[tuple[int, Prompt, SamplingParams]]:
    """One engine stream per (prompt, choice); choice i of a seeded request uses seed + i."""
    limit = call.max_tokens if call.max_tokens is not None else -1  # -1: to the context's end
    params = replace(call.params, max_tokens=limit)
    jobs = []
    for p_index, prompt in enumerate(call.prompts):
        for choice in range(call.n):
            seeded = params
            if params.seed is not None and choice:
                seeded = replace(params, seed=params.seed + choice)
            jobs.append((p_index * call.n + choice, prompt, seeded))
    return jobs


async def _merge(
    engine: StreamingEngine, jobs: list[tuple[int, Prompt, SamplingParams]]
) -> AsyncIterator[ChoiceEvent]:
    """Run several streams at once (the worker batches them) and interleave their events."""
    out: asyncio.Queue[ChoiceEvent | BaseException | None] = asyncio.Queue()

    async def run(index: int, prompt: Prompt, params: SamplingParams) -> None:
        try:
            async for event in engine.stream(prompt, params):
                await out.put(ChoiceEvent(index, event))
        except Exception as exc:  # noqa: BLE001 - not swallowed: the consumer raises it
            await out.put(exc)
        finally:
            await out.put(None)

    tasks = [asyncio.create_task(run(*job)) for job in jobs]
    try:
        running = len(tasks)
        while running:
            item = await out.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _provider(gateway: Gateway, call: GenerationCall) -> EngineProvider:
    """A batch line of a local model runs on the batch workers when there are some (idle
    CPU priority); everything else on the gateway's engines."""
    batch = gateway.batch_workers
    if call.batch is not None and batch is not None and not is_endpoint(call.served.version):
        return batch
    return gateway.workers


def _admission(
    gateway: Gateway, call: GenerationCall, streams: int
) -> contextlib.AbstractContextManager[None]:
    """The admission a call needs: an engine worker's slots and queue, its context checked
    here; an endpoint version's own in-flight limit (its upstream checks its context); a
    batch worker's own slots (the batch runner keeps within them)."""
    version = call.served.version
    if is_endpoint(version):
        capacity = max_in_flight(version, gateway.settings.endpoint_max_in_flight)
        return gateway.admission.admit(version.digest, streams, capacity=capacity)
    context = model_context(version, gateway.settings.worker_ctx_per_slot)
    if call.max_tokens is not None and call.max_tokens >= context:
        raise InvalidInput(
            f"max_tokens ({call.max_tokens}) must be below the context of "
            f"{version.ref} ({context} tokens, prompt included)",
            param="max_tokens",
            code="context_length_exceeded",
        )
    if _provider(gateway, call) is not gateway.workers:
        capacity = gateway.settings.batch_concurrency
        return gateway.admission.admit(f"{version.digest}:batch", streams, capacity=capacity)
    return gateway.admission.admit(version.digest, streams)


def engine_handler(gateway: Gateway) -> Handler:
    """The terminal handler: admission, the version's engine (worker or endpoint), its
    event stream."""

    async def handle(call: GenerationCall) -> AsyncIterator[ChoiceEvent]:
        version = call.served.version
        jobs = _jobs(call)
        admission = _admission(gateway, call, len(jobs))
        try:
            with admission:
                async with _provider(gateway, call).lease(version) as engine:
                    if len(jobs) == 1:
                        _, prompt, params = jobs[0]
                        async for event in engine.stream(prompt, params):
                            yield ChoiceEvent(0, event)
                    else:
                        async for item in _merge(engine, jobs):
                            yield item
        except (asyncio.CancelledError, GeneratorExit):
            gateway.metrics.cancelled.inc()  # the client went away mid-generation
            raise

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
                counted = choice_usage(item.index, call.n, item.event)
                gateway.metrics.tokens_in.labels(model).inc(counted.prompt_tokens)
                gateway.metrics.tokens_out.labels(model).inc(counted.completion_tokens)
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
