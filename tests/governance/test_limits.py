"""Limits and budgets: windows, reserve/settle, atomicity under 200 parallel requests,
in process and through the real Redis at 127.0.0.1:6379.

Every scenario runs on an injected clock, set far in the past, near today and far in the
future: the backends must take "now" from the limiter, never from the wall clock."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from modelyard.errors import RateLimited
from modelyard.governance.limits import Limiter
from modelyard.governance.limits_backend import Counters, MemoryCounters, RedisCounters
from modelyard.governance.scopes import Limits

REDIS_URL = "redis://127.0.0.1:6379/0"
# Half a minute past noon on three dates: what a window's expiry is measured against must be
# this clock, whatever the machine's date.
NOONS = {
    "past": datetime(2001, 3, 14, 12, 0, 30, tzinfo=UTC).timestamp(),
    "recent": datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC).timestamp(),
    "future": datetime(2091, 7, 2, 12, 0, 30, tzinfo=UTC).timestamp(),
}


@pytest.fixture(params=sorted(NOONS))
def noon(request: pytest.FixtureRequest) -> float:
    return NOONS[request.param]


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    prefix = f"modelyard-test:{uuid.uuid4().hex}:"
    backend = RedisCounters(REDIS_URL, prefix=prefix)
    yield backend
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()
    backend.close()


def test_requests_per_minute_and_retry_after(counters: Counters, noon: float) -> None:
    clock = [noon]
    limiter = Limiter(counters, clock=lambda: clock[0])
    limits = Limits(requests_per_minute=2)
    limiter.reserve("k", limits, None, Limits(), tokens=10)
    limiter.reserve("k", limits, None, Limits(), tokens=10)
    with pytest.raises(RateLimited) as caught:
        limiter.reserve("k", limits, None, Limits(), tokens=10)
    assert caught.value.http_status == 429
    assert caught.value.retry_after_s == pytest.approx(29.5, abs=1)
    assert "requests per minute" in caught.value.message and "'k'" in caught.value.message
    clock[0] += 60  # next minute window
    limiter.reserve("k", limits, None, Limits(), tokens=10)


def test_settle_returns_unused_tokens_and_team_budget_is_shared(
    counters: Counters, noon: float
) -> None:
    limiter = Limiter(counters, clock=lambda: noon)
    team = Limits(tokens_per_day=100)
    first = limiter.reserve("a", Limits(), "ops", team, tokens=80)
    with pytest.raises(RateLimited, match="team 'ops' is over its tokens per day"):
        limiter.reserve("b", Limits(), "ops", team, tokens=30)
    limiter.settle(first, actual_tokens=20)  # 60 of the estimate come back
    limiter.reserve("b", Limits(), "ops", team, tokens=30)
    with pytest.raises(RateLimited, match="this request alone needs 500"):
        limiter.reserve("c", Limits(tokens_per_minute=100), None, Limits(), tokens=500)


def test_all_or_nothing(counters: Counters, noon: float) -> None:
    limiter = Limiter(counters, clock=lambda: noon)
    key = Limits(requests_per_minute=10, tokens_per_month=50)
    limiter.reserve("k", key, None, Limits(), tokens=40)
    with pytest.raises(RateLimited, match="tokens per month"):
        limiter.reserve("k", key, None, Limits(), tokens=40)
    for _ in range(9):  # the refused request took no request slot
        limiter.reserve("k", key, None, Limits(), tokens=1)


def test_200_parallel_requests_on_a_budget_for_one(counters: Counters, noon: float) -> None:
    limiter = Limiter(counters, clock=lambda: noon)
    budget = Limits(tokens_per_day=100)
    admitted: list[int] = []
    refused: list[int] = []
    barrier = threading.Barrier(200)

    def call(n: int) -> None:
        barrier.wait()
        try:
            limiter.reserve(f"race-{id(counters)}", budget, None, Limits(), tokens=60)
        except RateLimited:
            refused.append(n)
        else:
            admitted.append(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(refused)) == (1, 199)


def test_month_window_rolls_over_in_december(counters: Counters) -> None:
    limiter = Limiter(
        counters, clock=lambda: datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp()
    )
    limiter.reserve("k", Limits(tokens_per_month=10), None, Limits(), tokens=10)
    with pytest.raises(RateLimited) as caught:
        limiter.reserve("k", Limits(tokens_per_month=10), None, Limits(), tokens=1)
    assert caught.value.retry_after_s == pytest.approx(60, abs=1)


def test_a_window_expires_by_the_limiters_clock_not_the_wall_clock(
    counters: Counters, noon: float
) -> None:
    """A full day budget stays full all that (injected) day, and frees the next day."""
    clock = [noon]
    limiter = Limiter(counters, clock=lambda: clock[0])
    day = Limits(tokens_per_day=10)
    limiter.reserve("d", day, None, Limits(), tokens=10)
    clock[0] += 11 * 3600  # 23:00:30 the same day
    with pytest.raises(RateLimited, match="tokens per day") as caught:
        limiter.reserve("d", day, None, Limits(), tokens=1)
    assert caught.value.retry_after_s == pytest.approx(3570, abs=1)
    clock[0] += 3600  # past midnight
    limiter.reserve("d", day, None, Limits(), tokens=10)


def test_redis_keys_expire_with_the_remaining_window(noon: float) -> None:
    """Redis expires by its own clock: the key's TTL is what is left of the window."""
    prefix = f"modelyard-test:{uuid.uuid4().hex}:"
    backend = RedisCounters(REDIS_URL, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        Limiter(backend, clock=lambda: noon).reserve(
            "t", Limits(requests_per_minute=5), None, Limits(), tokens=1
        )
        [key] = list(client.scan_iter(f"{prefix}*"))
        assert 0 < client.pttl(key) <= 30_000  # 30 s left of the minute at hh:mm:30
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()
        backend.close()
