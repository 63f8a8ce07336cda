"""Admission per model: a worker's slots plus a bounded queue, then 429.

An engine worker decodes ``worker_slots`` requests at once and queues the rest itself;
the gateway admits at most ``gateway_queue_size`` more per model than it has slots, so a
burst gets a fast 429 with ``Retry-After`` instead of an unbounded wait.

An endpoint version is admitted against its own ``capacity`` instead (its upstream's
batching and queueing are its own: ``endpoint_max_in_flight`` per replica); every request
admitted is running, none waits here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from modelyard.errors import RateLimited


class Admission:
    def __init__(self, *, slots: int, queue_size: int, retry_after_s: int) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self._in_flight: dict[str, int] = {}
        self._capacity: dict[str, int] = {}
        """Models admitted against a capacity of their own (endpoint versions)."""

    @contextlib.contextmanager
    def admit(self, model: str, streams: int = 1, *, capacity: int | None = None) -> Iterator[None]:
        """Hold ``streams`` places for ``model`` (a request with n choices takes n); with
        ``capacity``, at most that many in flight, none counted as waiting."""
        current = self._in_flight.get(model, 0)
        if capacity is not None:
            if current and current + streams > capacity:
                raise RateLimited(
                    f"{model} has {current} requests in flight, its limit "
                    f"({capacity}: MODELYARD_ENDPOINT_MAX_IN_FLIGHT per replica); "
                    f"retry after {self.retry_after_s}s",
                    retry_after_s=self.retry_after_s,
                    code="queue_full",
                )
            self._capacity[model] = capacity
        elif current and current + streams > self.slots + self.queue_size:
            raise RateLimited(
                f"{model} is at capacity ({min(current, self.slots)} running, "
                f"{max(0, current - self.slots)} waiting); retry after {self.retry_after_s}s",
                retry_after_s=self.retry_after_s,
                code="queue_full",
            )
        self._in_flight[model] = current + streams
        try:
            yield
        finally:
            left = self._in_flight[model] - streams
            if left:
                self._in_flight[model] = left
            else:
                del self._in_flight[model]
                self._capacity.pop(model, None)

    def in_flight(self, model: str) -> int:
        return self._in_flight.get(model, 0)

    def _slots(self, model: str) -> int:
        return self._capacity.get(model, self.slots)

    def running(self) -> int:
        return sum(min(n, self._slots(m)) for m, n in self._in_flight.items())

    def waiting(self) -> int:
        return sum(max(0, n - self._slots(m)) for m, n in self._in_flight.items())
