"""The capacity model: a target load in, replica and process counts (with the why) out.

Engine replicas (Little's law per concurrency level of a measured replica)::

    time to first token at the target's prompt  T = ttft(c) x P / P_bench(c)
    one request's time in a slot                L = T + O / stream_speed(c)
    requests per second one replica sustains    r(c) = c / L

The level with the highest r(c) that meets the TTFT objective (if one is given) is used;
``replicas = ceil(rps / (r x headroom))``. Without a benchmark the replica is modelled from
throughput alone (``r = 1 / (P / prefill + O / decode)``), which ignores batching and so
over-provisions.

Gateway processes: ``ceil(rps / (g x headroom))``, one core each, with g the measured
requests per second of one gateway process with a core of its own, in front of a fast
engine (:func:`~modelyard.capacity.measured.best_requests_per_s`). The audit log is one chain in one
database, shared by all gateway processes: each request appends ``appends_per_request``
records, and the plan is infeasible when that exceeds the measured ceiling x headroom.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from modelyard.capacity.measured import EngineBench
from modelyard.cost.compare import Throughput
from modelyard.errors import InvalidInput


@dataclass(frozen=True)
class Target:
    requests_per_s: float
    prompt_tokens: int
    output_tokens: int
    max_ttft_s: float | None = None
    headroom: float = 0.8
    """Plan to run each part at this share of what it was measured to sustain."""
    appends_per_request: int = 2
    """Audit records per request: the accepted record before the first byte, then the
    completion record."""

    def check(self) -> None:
        if self.requests_per_s <= 0:
            raise InvalidInput("--rps must be above 0", param="rps")
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise InvalidInput("--prompt-tokens and --output-tokens must be at least 1")
        if not 0 < self.headroom <= 1:
            raise InvalidInput("--headroom must be in (0, 1]", param="headroom")
        if self.max_ttft_s is not None and self.max_ttft_s <= 0:
            raise InvalidInput("--max-ttft-ms must be above 0", param="max_ttft_ms")


@dataclass(frozen=True)
class Replica:
    requests_per_s: float
    concurrency: int | None
    ttft_s: float | None
    latency_s: float | None
    source: str


@dataclass(frozen=True)
class Part:
    """One tier of the plan: how many, what one sustains, and whether the target fits."""

    name: str
    count: int | None
    per_unit_requests_per_s: float | None
    load_share: float | None
    """The target over (count x per-unit rate): the utilisation the plan runs at."""
    feasible: bool
    note: str


@dataclass(frozen=True)
class Plan:
    target: Target
    replica: Replica
    parts: tuple[Part, ...]

    @property
    def feasible(self) -> bool:
        return all(part.feasible for part in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": asdict(self.target),
            "engine_replica": asdict(self.replica),
            "parts": [asdict(part) for part in self.parts],
            "feasible": self.feasible,
        }


def replica_from_bench(bench: EngineBench, target: Target) -> Replica:
    """The best level of a measured replica for the target's prompt and output lengths."""
    best: Replica | None = None
    for level in bench.levels:
        ttft = level.ttft_s * target.prompt_tokens / level.prompt_tokens
        if target.max_ttft_s is not None and ttft > target.max_ttft_s:
            continue
        latency = ttft + target.output_tokens / level.stream_tokens_per_s
        rate = level.concurrency / latency
        if best is None or rate > best.requests_per_s:
            best = Replica(rate, level.concurrency, ttft, latency, f"measured: {bench.target}")
    if best is None:
        fastest = min(lv.ttft_s * target.prompt_tokens / lv.prompt_tokens for lv in bench.levels)
        raise InvalidInput(
            f"no measured concurrency level of {bench.target} meets the TTFT objective "
            f"(the best predicted TTFT is {fastest * 1000:.0f} ms): a faster engine, shorter "
            "prompts or a looser --max-ttft-ms"
        )
    return best


def replica_from_throughput(throughput: Throughput, target: Target) -> Replica:
    """A replica from decode (and prefill) throughput alone: no batching is assumed."""
    prefill = throughput.prefill_tokens_per_s
    prefill_s = target.prompt_tokens / prefill if prefill else 0.0
    busy = prefill_s + target.output_tokens / throughput.decode_tokens_per_s
    return Replica(1.0 / busy, None, prefill_s or None, busy, throughput.source)


def _tier(name: str, target: Target, per_unit: float | None, unit: str) -> Part:
    if per_unit is None:
        return Part(name, None, None, None, True, f"not measured: pass {unit}")
    count = max(1, math.ceil(target.requests_per_s / (per_unit * target.headroom)))
    share = target.requests_per_s / (count * per_unit)
    return Part(name, count, per_unit, share, True, f"{per_unit:,.2f} req/s each")


def plan(
    target: Target,
    replica: Replica,
    *,
    gateway_requests_per_s: float | None,
    audit_appends_per_s: float | None,
) -> Plan:
    target.check()
    engines = _tier("engine replicas", target, replica.requests_per_s, "--engine-bench")
    gateways = _tier("gateway processes", target, gateway_requests_per_s, "--gateway-bench")
    needed = target.requests_per_s * target.appends_per_request
    if audit_appends_per_s is None:
        audit = Part("audit log", None, None, None, True, "not measured: pass --audit-bench")
    else:
        usable = audit_appends_per_s * target.headroom
        fits = needed <= usable
        most = usable / target.appends_per_request
        audit = Part(
            "audit log",
            1,
            audit_appends_per_s / target.appends_per_request,
            needed / audit_appends_per_s,
            fits,
            f"{needed:,.0f} appends/s needed of {audit_appends_per_s:,.0f} measured"
            + ("" if fits else f": one database sustains about {most:,.0f} req/s at this headroom"),
        )
    return Plan(target, replica, (engines, gateways, audit))
