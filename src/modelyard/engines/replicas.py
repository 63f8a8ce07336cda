"""Replicas of one endpoint version: which one takes a request, and which are kept out.

* **Least outstanding requests**: a request goes to the available replica with the fewest
  requests in flight from this gateway; ties go round-robin.
* **Circuit breaker** per replica: ``failures`` consecutive failures (a connect error, a 5xx
  before the first byte, a stream lost mid-answer, a timeout) *open* it: the replica takes no
  requests. After ``cooldown_s`` it is *half-open*: one request (or health check) may try
  it; success *closes* it, failure opens it again for another cool-down.
* **Health**: a periodic check (``GET /v1/models``) marks a replica up or down; a replica
  marked down is skipped while another is available. A successful check is also a
  half-open probe.

All of it is plain state driven by an injected clock; nothing here sleeps or does I/O.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelyard.errors import Unavailable

Circuit = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 3
    """Consecutive failures that open the circuit."""
    cooldown_s: float = 15.0
    """How long an open circuit stays open before one probe may go through."""


@dataclass(eq=False)
class Replica:
    url: str
    outstanding: int = 0
    healthy: bool | None = None
    """The last health check: True up, False down, None not checked yet."""
    circuit: Circuit = "closed"
    consecutive_failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    """A half-open probe is in flight (no other request may try the replica meanwhile)."""
    last_error: str | None = None
    served: int = 0
    failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "healthy": self.healthy,
            "circuit": self.circuit,
            "outstanding": self.outstanding,
            "consecutive_failures": self.consecutive_failures,
            "served": self.served,
            "failed": self.failed,
            "last_error": self.last_error,
        }


class ReplicaSet:
    """The replicas of one endpoint version and their breakers."""

    def __init__(
        self,
        urls: Sequence[str],
        breaker: BreakerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("an endpoint needs at least one replica")
        self.replicas = [Replica(url) for url in urls]
        self.breaker = breaker
        self._clock = clock
        self._turn = itertools.count()

    # -- choosing ----------------------------------------------------------------------------

    def _cooled(self, replica: Replica, now: float) -> bool:
        return now - replica.opened_at >= self.breaker.cooldown_s

    def _usable(self, replica: Replica, now: float) -> bool:
        if replica.circuit == "closed":
            return True
        if replica.probing:
            return False
        return replica.circuit == "half-open" or self._cooled(replica, now)

    def acquire(self, exclude: Collection[Replica] = ()) -> Replica:
        """The replica to send the next request to, counted as outstanding until
        :meth:`release`; Unavailable when none may take it."""
        now = self._clock()
        usable = [r for r in self.replicas if r not in exclude and self._usable(r, now)]
        if not usable:
            raise self._none_left(exclude)
        healthy = [r for r in usable if r.healthy is not False]
        pool = healthy or usable
        fewest = min(r.outstanding for r in pool)
        tied = [r for r in pool if r.outstanding == fewest]
        chosen = tied[next(self._turn) % len(tied)]
        if chosen.circuit != "closed":
            chosen.circuit, chosen.probing = "half-open", True
        chosen.outstanding += 1
        return chosen

    def _none_left(self, exclude: Collection[Replica]) -> Unavailable:
        now = self._clock()
        waits = [
            self.breaker.cooldown_s - (now - r.opened_at)
            for r in self.replicas
            if r.circuit == "open" and r not in exclude
        ]
        wait = max(1.0, min(waits)) if waits else 1.0
        return Unavailable(
            f"no replica of this endpoint can take the request now ({self.summary()})",
            code="model_unavailable",
            retry_after_s=wait,
        )

    # -- outcomes ----------------------------------------------------------------------------

    def release(self, replica: Replica, outcome: bool | None, error: str | None = None) -> None:
        """``outcome``: True served, False failed (counts towards its breaker), None neither
        (the client went away, or the request itself was refused)."""
        replica.outstanding = max(0, replica.outstanding - 1)
        probing, replica.probing = replica.probing, False
        if outcome is True:
            replica.served += 1
            self._succeeded(replica)
        elif outcome is False:
            replica.failed += 1
            self._failed(replica, error)
        elif probing:
            replica.circuit = "half-open"  # undecided: the next request may probe it

    def _succeeded(self, replica: Replica) -> None:
        replica.consecutive_failures = 0
        replica.circuit = "closed"
        replica.last_error = None

    def _failed(self, replica: Replica, error: str | None) -> None:
        replica.consecutive_failures += 1
        replica.last_error = error
        tripped = replica.consecutive_failures >= self.breaker.failures
        if replica.circuit != "closed" or tripped:
            replica.circuit = "open"
            replica.opened_at = self._clock()

    # -- health ------------------------------------------------------------------------------

    def due_for_check(self, replica: Replica) -> bool:
        """Whether a health check may go to ``replica`` now (an open circuit only once its
        cool-down is over: the check is its half-open probe)."""
        return replica.circuit != "open" or self._cooled(replica, self._clock())

    def health(self, replica: Replica, ok: bool, error: str | None = None) -> None:
        """Record a health check's result."""
        replica.healthy = ok
        if ok:
            if replica.circuit != "closed" and not replica.probing:
                self._succeeded(replica)
        else:
            replica.last_error = error
            if replica.circuit != "closed":
                replica.circuit = "open"
                replica.opened_at = self._clock()

    # -- status ------------------------------------------------------------------------------

    def available(self) -> bool:
        now = self._clock()
        return any(self._usable(r, now) and r.healthy is not False for r in self.replicas)

    def summary(self) -> str:
        return ", ".join(
            f"{r.url}: {r.circuit}{'' if r.healthy is not False else ', down'}"
            for r in self.replicas
        )

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.replicas]
