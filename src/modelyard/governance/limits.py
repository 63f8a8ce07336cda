"""Rate limits and token budgets per key and per team.

Reserve before generating, settle after: :meth:`Limiter.reserve` takes one request and the
request's *estimated* tokens (prompt + max_tokens) from every window of the key and of its
team — all or nothing, atomically — or raises :class:`~modelyard.errors.RateLimited` with
``retry_after_s`` (the end of the window that is full). :meth:`Limiter.settle` then corrects
the token windows by the real count. Windows are fixed: the UTC minute, day and month.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from modelyard.config import Settings
from modelyard.errors import RateLimited
from modelyard.governance.limits_backend import Counter, Counters, MemoryCounters, RedisCounters
from modelyard.governance.scopes import Limits


@dataclass(frozen=True)
class Reservation:
    token_counters: tuple[Counter, ...]
    tokens: int


def _window_ends(now: float) -> dict[str, tuple[str, float]]:
    moment = datetime.fromtimestamp(now, UTC)
    minute = int(now // 60)
    day_start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    next_month = (
        day_start.replace(year=moment.year + 1, month=1, day=1)
        if moment.month == 12
        else day_start.replace(month=moment.month + 1, day=1)
    )
    return {
        "minute": (str(minute), (minute + 1) * 60.0),
        "day": (moment.strftime("%Y%m%d"), day_start.timestamp() + 86400.0),
        "month": (moment.strftime("%Y%m"), next_month.timestamp()),
    }


_WINDOWS = (
    ("requests_per_minute", "minute", "requests per minute"),
    ("tokens_per_minute", "minute", "tokens per minute"),
    ("tokens_per_day", "day", "tokens per day"),
    ("tokens_per_month", "month", "tokens per month"),
)


class Limiter:
    def __init__(self, counters: Counters, clock: Callable[[], float] = time.time) -> None:
        self.counters = counters
        self.clock = clock

    def reserve(
        self,
        key_name: str,
        key_limits: Limits,
        team: str | None,
        team_limits: Limits,
        tokens: int,
    ) -> Reservation:
        now = self.clock()
        ends = _window_ends(now)
        counters: list[Counter] = []
        labels: list[str] = []
        token_counters: list[Counter] = []
        owners = [(f"key:{key_name}", f"key {key_name!r}", key_limits)]
        if team is not None:
            owners.append((f"team:{team}", f"team {team!r}", team_limits))
        for prefix, who, limits in owners:
            for field, window, label in _WINDOWS:
                limit = getattr(limits, field)
                if limit is None:
                    continue
                bucket, end = ends[window]
                amount = 1 if field == "requests_per_minute" else tokens
                counter = Counter(f"{prefix}:{field}:{bucket}", amount, limit, end)
                counters.append(counter)
                labels.append(f"{who} is over its {label} limit ({limit})")
                if field != "requests_per_minute":
                    token_counters.append(counter)
        failed = self.counters.reserve(counters, now)
        if failed is not None:
            retry = max(1.0, counters[failed].expires_at - now)
            if counters[failed].amount > counters[failed].limit:
                message = f"{labels[failed]}: this request alone needs {counters[failed].amount}"
            else:
                message = labels[failed]
            raise RateLimited(f"{message}; retry in {retry:.0f}s", retry_after_s=retry)
        return Reservation(tuple(token_counters), tokens)

    def close(self) -> None:
        if isinstance(self.counters, RedisCounters):
            self.counters.close()

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the estimate with the real count (also after a failed generation: pass 0)."""
        delta = actual_tokens - reservation.tokens
        if delta == 0 or not reservation.token_counters:
            return
        self.counters.adjust(
            [Counter(c.key, delta, c.limit, c.expires_at) for c in reservation.token_counters],
            self.clock(),
        )


def open_limiter(settings: Settings) -> Limiter:
    """Redis-backed when ``MODELYARD_REDIS_URL`` is set (shared by all gateway processes)."""
    if settings.redis_url:
        return Limiter(RedisCounters(settings.redis_url))
    return Limiter(MemoryCounters())
