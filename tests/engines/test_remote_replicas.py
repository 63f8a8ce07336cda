"""Replica choice and circuit breakers, with an injected clock (nothing sleeps)."""

from __future__ import annotations

import pytest

from modelyard.engines.replicas import BreakerSettings, ReplicaSet
from modelyard.errors import Unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replicas(n: int = 2, failures: int = 2, cooldown: float = 10.0) -> tuple[ReplicaSet, Clock]:
    clock = Clock()
    urls = [f"http://r{i}:80" for i in range(n)]
    return ReplicaSet(urls, BreakerSettings(failures, cooldown), clock=clock), clock


def test_least_outstanding_wins_and_ties_take_turns() -> None:
    rs, _ = replicas(3)
    first = rs.acquire()
    second = rs.acquire()
    third = rs.acquire()
    assert {first.url, second.url, third.url} == {r.url for r in rs.replicas}
    rs.release(second, True)
    assert rs.acquire() is second  # the only one with nothing in flight
    assert [r.outstanding for r in rs.replicas] == [1, 1, 1]


def test_consecutive_failures_open_the_circuit_and_a_cooled_probe_closes_it() -> None:
    rs, clock = replicas(2, failures=2, cooldown=10)
    bad, good = rs.replicas
    for _ in range(2):
        taken = rs.acquire(exclude=[good])
        assert taken is bad
        rs.release(taken, False, "connect refused")
    assert bad.circuit == "open" and bad.last_error == "connect refused"
    for _ in range(5):  # while open, everything goes to the good one
        taken = rs.acquire()
        assert taken is good
        rs.release(taken, True)
    with pytest.raises(Unavailable) as refused:
        rs.acquire(exclude=[good])
    assert refused.value.retry_after_s == pytest.approx(10)
    clock.now += 10  # cooled down: one probe may go
    probe = rs.acquire(exclude=[good])
    assert probe is bad and bad.circuit == "half-open"
    with pytest.raises(Unavailable):
        rs.acquire(exclude=[good])  # only one probe at a time
    rs.release(probe, True)
    assert bad.circuit == "closed" and bad.consecutive_failures == 0


def test_a_failed_probe_opens_the_circuit_again_for_a_whole_cool_down() -> None:
    rs, clock = replicas(1, failures=1, cooldown=5)
    (only,) = rs.replicas
    rs.release(rs.acquire(), False, "500")
    assert only.circuit == "open"
    clock.now += 5
    rs.release(rs.acquire(), False, "500 again")
    assert only.circuit == "open" and only.opened_at == clock.now
    clock.now += 4
    with pytest.raises(Unavailable):
        rs.acquire()


def test_a_success_resets_the_count_and_a_cancelled_request_counts_for_nothing() -> None:
    rs, _ = replicas(1, failures=2)
    (only,) = rs.replicas
    rs.release(rs.acquire(), False, "x")
    rs.release(rs.acquire(), True)
    rs.release(rs.acquire(), False, "y")
    assert only.circuit == "closed"
    rs.release(rs.acquire(), None)
    assert only.consecutive_failures == 1 and only.outstanding == 0


def test_health_checks_mark_replicas_down_and_serve_as_the_half_open_probe() -> None:
    rs, clock = replicas(2, failures=1, cooldown=10)
    down, up = rs.replicas
    rs.health(down, False, "health check failed: ConnectError")
    for _ in range(3):
        taken = rs.acquire()
        assert taken is up  # a replica marked down is skipped while another is available
        rs.release(taken, True)
    rs.health(up, False)
    taken = rs.acquire()  # all down: still tried rather than refusing outright
    rs.release(taken, False, "refused")
    assert taken.circuit == "open"
    assert not rs.due_for_check(taken)
    clock.now += 10
    assert rs.due_for_check(taken)
    rs.health(taken, True)
    assert taken.circuit == "closed" and taken.healthy is True
    assert rs.available()


def test_status_lists_each_replica() -> None:
    rs, _ = replicas(2)
    held = rs.acquire()
    status = {r["url"]: r for r in rs.to_json()}
    assert status[held.url]["outstanding"] == 1
    assert {r["circuit"] for r in status.values()} == {"closed"}
