"""The capacity model: arithmetic from measurements, objectives, and the audit ceiling."""

from __future__ import annotations

import math

import pytest

from modelyard.capacity.measured import (
    audit_appends_per_s,
    best_requests_per_s,
    engine_bench,
)
from modelyard.capacity.plan import Target, plan, replica_from_bench, replica_from_throughput
from modelyard.cost.compare import Throughput
from modelyard.errors import InvalidInput


def bench_json() -> dict[str, object]:
    """Two levels: at 1 stream TTFT 0.1 s for 100 prompt tokens and 50 tok/s per stream; at 4
    streams TTFT 0.4 s and 25 tok/s per stream."""
    return {
        "target": "llama-server",
        "levels": [
            {
                "concurrency": 1,
                "completed": 8,
                "requests_per_s": 0.7,
                "prompt_tokens_mean": 100.0,
                "per_stream_tokens_per_s": 50.0,
                "ttft_s": {"p50": 0.1},
            },
            {
                "concurrency": 4,
                "completed": 8,
                "requests_per_s": 1.9,
                "prompt_tokens_mean": 100.0,
                "per_stream_tokens_per_s": 25.0,
                "ttft_s": {"p50": 0.4},
            },
            {
                "concurrency": 8,
                "completed": 0,
                "requests_per_s": 0.0,
                "prompt_tokens_mean": None,
                "per_stream_tokens_per_s": None,
                "ttft_s": {"p50": None},
            },
        ],
    }


def test_replica_rate_is_littles_law_at_the_best_level() -> None:
    target = Target(10, prompt_tokens=200, output_tokens=100)
    replica = replica_from_bench(engine_bench(bench_json(), "b.json"), target)
    # level 1: 0.2 + 100/50 = 2.2 s -> 0.4545 req/s; level 4: 0.8 + 4 = 4.8 s -> 0.8333 req/s
    assert replica.concurrency == 4
    assert replica.requests_per_s == pytest.approx(4 / 4.8)
    assert replica.ttft_s == pytest.approx(0.8)


def test_a_ttft_objective_picks_a_lower_level_or_refuses() -> None:
    bench = engine_bench(bench_json(), "b.json")
    tight = Target(10, 200, 100, max_ttft_s=0.5)
    assert replica_from_bench(bench, tight).concurrency == 1
    with pytest.raises(InvalidInput, match="TTFT objective"):
        replica_from_bench(bench, Target(10, 200, 100, max_ttft_s=0.1))


def test_counts_round_up_with_headroom_and_the_audit_ceiling_decides_feasibility() -> None:
    target = Target(10, 200, 100, headroom=0.8)
    replica = replica_from_bench(engine_bench(bench_json(), "b.json"), target)
    result = plan(target, replica, gateway_requests_per_s=300.0, audit_appends_per_s=1000.0)
    engines, gateways, audit = result.parts
    assert engines.count == math.ceil(10 / (4 / 4.8 * 0.8)) == 15
    assert gateways.count == 1
    assert audit.feasible and result.feasible
    busy = plan(
        Target(600, 200, 100), replica, gateway_requests_per_s=300.0, audit_appends_per_s=1000.0
    )
    assert busy.parts[1].count == 3  # 600 / (300 x 0.8) = 2.5
    assert not busy.parts[2].feasible and not busy.feasible
    assert "sustains about 400 req/s" in busy.parts[2].note  # 1000 x 0.8 / 2 appends


def test_unmeasured_tiers_are_said_not_guessed() -> None:
    target = Target(1, 10, 10)
    replica = replica_from_throughput(Throughput(20.0, 100.0, "calibration"), target)
    assert replica.requests_per_s == pytest.approx(1 / (0.1 + 0.5))
    result = plan(target, replica, gateway_requests_per_s=None, audit_appends_per_s=None)
    assert [p.count for p in result.parts] == [1, None, None]  # 1.67 x 0.8 > 1
    assert "--gateway-bench" in result.parts[1].note and result.feasible


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (Target(0, 1, 1), "--rps"),
        (Target(1, 0, 1), "at least 1"),
        (Target(1, 1, 1, headroom=1.5), "--headroom"),
    ],
)
def test_bad_targets_are_refused(target: Target, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        target.check()


def test_measurement_files_are_checked() -> None:
    with pytest.raises(InvalidInput, match="not `modelyard bench --json`"):
        engine_bench({"levels": [{"completed": 1}]}, "x.json")
    with pytest.raises(InvalidInput, match="completed no requests"):
        best_requests_per_s({"levels": [{"completed": 0, "requests_per_s": 0}]}, "x.json")
    with pytest.raises(InvalidInput, match="audit_bench"):
        audit_appends_per_s({"records": 3}, "x.json")
    assert best_requests_per_s(bench_json(), "b.json") == 1.9
    gateway = {
        "levels": [
            {"processes": 2, "completed": 9, "requests_per_s": 300.0},
            {"processes": 1, "completed": 9, "requests_per_s": 170.0},
        ]
    }
    assert best_requests_per_s(gateway, "g.json") == 170.0  # the fewest processes, per process


def test_gateway_rate_is_per_core_when_the_bench_measured_cpu() -> None:
    gateway = {
        "levels": [
            {
                "processes": 1,
                "completed": 9,
                "requests_per_s": 170.0,
                "requests_per_gateway_cpu_s": 285.0,
            },
            {
                "processes": 2,
                "completed": 9,
                "requests_per_s": 300.0,
                "requests_per_gateway_cpu_s": 250.0,
            },
        ]
    }
    # a process that shared its cores with the load made 170/s; with a core of its own, 285/s
    assert best_requests_per_s(gateway, "g.json") == 285.0
    assert audit_appends_per_s({"per_second": 1232}, "a.json") == 1232.0
