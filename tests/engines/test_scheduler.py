"""The scheduler and model pool with the fake engine (the real one runs in tests/gateway)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import SamplingParams, TextDelta
from modelyard.engines.fake import FakeEngine
from modelyard.engines.scheduler import ModelKind, ModelPool, Scheduler
from modelyard.errors import RateLimited, Unavailable


def _version(name: str, size: int = 100 * 1024 * 1024) -> ModelVersion:
    return ModelVersion(
        name=name,
        version=1,
        digest=name * 8,
        format="gguf",
        size_bytes=size,
        metadata={},
        origin="imported",
        parent=None,
        lineage={},
        source_path="",
        created_by="tests",
        created_at=datetime.now(UTC),
    )


class Loads:
    def __init__(self) -> None:
        self.engines: list[FakeEngine] = []

    def __call__(self, version: ModelVersion, kind: ModelKind) -> FakeEngine:
        engine = FakeEngine(reply=f"{version.name} says hello to you all")
        self.engines.append(engine)
        return engine


def _words(engine: Any) -> Iterator[str]:
    for event in engine.complete("p", SamplingParams(max_tokens=50)):
        if isinstance(event, TextDelta):
            yield event.text


def test_work_streams_back_and_slots_get_their_own_engines() -> None:
    loads = Loads()
    scheduler = Scheduler(
        ModelPool(loads, budget_bytes=10**10), workers=2, queue_size=4, retry_after_s=1
    )
    scheduler.start()

    async def main() -> list[str]:
        async def one() -> str:
            return "".join([w async for w in scheduler.submit(_version("a"), "generate", _words)])

        return list(await asyncio.gather(*(one() for _ in range(6))))

    try:
        assert asyncio.run(main()) == ["a says hello to you all"] * 6
        assert 1 <= len(loads.engines) <= 2
        assert scheduler.pool.loaded() == [("a@1", "generate", len(loads.engines))]
    finally:
        scheduler.stop()
    assert all(e.closed for e in loads.engines)


def test_full_queue_is_rate_limited_and_cancel_frees_the_slot() -> None:
    release = threading.Event()
    started = threading.Event()

    def blocking(engine: Any) -> Iterator[int]:
        started.set()
        yield 1
        release.wait(10)
        yield 2

    scheduler = Scheduler(
        ModelPool(Loads(), budget_bytes=10**10), workers=1, queue_size=1, retry_after_s=3
    )
    scheduler.start()

    async def main() -> None:
        running = scheduler.submit(_version("a"), "generate", blocking)
        assert await running.__anext__() == 1
        waiting = scheduler.submit(_version("a"), "generate", blocking)
        with pytest.raises(RateLimited) as refused:
            scheduler.submit(_version("a"), "generate", blocking)
        assert refused.value.retry_after_s == 3
        scheduler.withdraw(waiting)  # a waiting job gives its place back at once
        again = scheduler.submit(_version("a"), "generate", blocking)
        scheduler.withdraw(running)
        release.set()
        assert [x async for x in again] == [1, 2]

    try:
        asyncio.run(main())
    finally:
        scheduler.stop()


def test_errors_reach_the_caller() -> None:
    def broken(engine: Any) -> Iterator[int]:
        raise Unavailable("nope")
        yield 0

    scheduler = Scheduler(
        ModelPool(Loads(), budget_bytes=10**10), workers=1, queue_size=1, retry_after_s=1
    )
    scheduler.start()

    async def main() -> None:
        with pytest.raises(Unavailable):
            async for _ in scheduler.submit(_version("a"), "generate", broken):
                pass

    try:
        asyncio.run(main())
    finally:
        scheduler.stop()


def test_pool_unloads_least_recently_used_within_budget() -> None:
    loads = Loads()
    mib = 1024 * 1024
    pool = ModelPool(loads, budget_bytes=400 * mib)  # two copies fit (~174 MiB each)
    for name in ("a", "b", "a", "c"):
        with pool.lease(_version(name, size=100 * mib), "generate"):
            pass
    # a, b loaded; a reused; c needs room: b (least recently used) goes.
    assert [ref for ref, _, _ in pool.loaded()] == ["a@1", "c@1"]
    assert [e.closed for e in loads.engines] == [False, True, False]
    with pool.lease(_version("a", size=100 * mib), "generate"):
        with pytest.raises(Unavailable):  # noqa: SIM117 - the lease must stay held
            with pool.lease(_version("d", size=250 * mib), "generate"):
                pass
        assert [ref for ref, _, _ in pool.loaded()] == ["a@1", "c@1"]  # nothing evicted
    pool.close()
    assert all(e.closed for e in loads.engines)
