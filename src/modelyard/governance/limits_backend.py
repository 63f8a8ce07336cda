"""Counter backends for limits: all-or-nothing reservation over several fixed windows.

:class:`MemoryCounters` serves one process; :class:`RedisCounters` lets several gateway
processes share one budget (the check-and-increment is a Lua script, so it is atomic on
the Redis server). Neither reads the wall clock: "now" comes from the limiter's clock, and
Redis gets each window's remaining time as a relative TTL.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from modelyard.errors import Unavailable


@dataclass(frozen=True)
class Counter:
    """``amount`` more on ``key`` if the total stays within ``limit``; the key lives until
    ``expires_at`` (epoch seconds: the end of its window)."""

    key: str
    amount: int
    limit: int
    expires_at: float


class Counters(Protocol):
    """Both methods take ``now`` from the caller's clock (the limiter's): a backend never
    reads the wall clock itself, so windows and expiry follow one clock."""

    def reserve(self, counters: Sequence[Counter], now: float) -> int | None:
        """Take every amount, or none: the index of the first counter that would overflow."""
        ...

    def adjust(self, counters: Sequence[Counter], now: float) -> None:
        """Add each (possibly negative) amount, never below zero; limits are not checked."""
        ...


class MemoryCounters:
    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _get(self, key: str, now: float) -> int:
        value, expires = self._values.get(key, (0, 0.0))
        return value if expires > now else 0

    def reserve(self, counters: Sequence[Counter], now: float) -> int | None:
        with self._lock:
            for index, counter in enumerate(counters):
                if self._get(counter.key, now) + counter.amount > counter.limit:
                    return index
            for counter in counters:
                self._values[counter.key] = (
                    self._get(counter.key, now) + counter.amount,
                    counter.expires_at,
                )
            if len(self._values) > 10_000:
                self._values = {k: v for k, v in self._values.items() if v[1] > now}
        return None

    def adjust(self, counters: Sequence[Counter], now: float) -> None:
        with self._lock:
            for counter in counters:
                value = max(0, self._get(counter.key, now) + counter.amount)
                self._values[counter.key] = (value, counter.expires_at)


_RESERVE = """
local n = #KEYS
for i = 1, n do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current + tonumber(ARGV[i]) > tonumber(ARGV[n + i]) then return i end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], ARGV[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[2 * n + i])
end
return 0
"""

_ADJUST = """
local n = #KEYS
for i = 1, n do
  local value = redis.call('INCRBY', KEYS[i], ARGV[i])
  if value < 0 then redis.call('SET', KEYS[i], 0) end
  redis.call('PEXPIRE', KEYS[i], ARGV[n + i])
end
return 0
"""


def _ttl_ms(counter: Counter, now: float) -> int:
    """Redis expires keys by its own clock, so the window's end travels as a relative TTL
    computed on the limiter's clock (at least 1 ms: PEXPIRE refuses zero)."""
    return max(1, int((counter.expires_at - now) * 1000))


class RedisCounters:
    def __init__(self, url: str, *, prefix: str = "modelyard:limits:") -> None:
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=10, socket_timeout=5, socket_connect_timeout=5
        )
        self._client: Any = redis.Redis(connection_pool=pool)
        self._prefix = prefix
        self._reserve = self._client.register_script(_RESERVE)
        self._adjust = self._client.register_script(_ADJUST)

    def reserve(self, counters: Sequence[Counter], now: float) -> int | None:
        if not counters:
            return None
        keys = [self._prefix + c.key for c in counters]
        args = (
            [c.amount for c in counters]
            + [c.limit for c in counters]
            + [_ttl_ms(c, now) for c in counters]
        )
        try:
            failed = int(self._reserve(keys=keys, args=args))
        except redis.RedisError as exc:
            raise Unavailable(f"the limits store (Redis) is unreachable: {exc}") from exc
        return None if failed == 0 else failed - 1

    def adjust(self, counters: Sequence[Counter], now: float) -> None:
        if not counters:
            return
        keys = [self._prefix + c.key for c in counters]
        args = [c.amount for c in counters] + [_ttl_ms(c, now) for c in counters]
        try:
            self._adjust(keys=keys, args=args)
        except redis.RedisError as exc:
            raise Unavailable(f"the limits store (Redis) is unreachable: {exc}") from exc

    def close(self) -> None:
        self._client.close()
