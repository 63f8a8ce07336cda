"""Where throughput comes from: given, estimated for a model on a profile, or measured."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.cost.throughput import resolve_throughput, throughput_from_bench
from modelyard.errors import InvalidInput, NotFound
from modelyard.hardware.gpus import parse_gpus
from modelyard.hardware.profile import GB, Calibration, HardwareProfile

CAL = Calibration(
    model="gemma3-270m@1",
    bytes_per_token=253_113_024,
    decode_tokens_per_s=20.0,
    prefill_tokens_per_s=60.0,
    measured_at=datetime.now(UTC),
)
CPU = HardwareProfile(
    name="cpu", ram_bytes=64 * GB, memory_bandwidth_bytes_per_s=20 * GB, calibration=CAL
)
GPU = HardwareProfile(name="gpu", ram_bytes=64 * GB, gpus=parse_gpus("1xH100-80GB"))


def test_given_numbers_win() -> None:
    t = resolve_throughput(CPU, load_knowledge_base(), tokens_per_second=50, model="phi-4")
    assert (t.decode_tokens_per_s, t.prefill_tokens_per_s) == (50, None)


def test_gpu_estimate_has_compute_bound_prefill_and_streams() -> None:
    kb = load_knowledge_base()
    one = resolve_throughput(GPU, kb, model="llama-3.1-8b")
    eight = resolve_throughput(GPU, kb, model="llama-3.1-8b", streams=8)
    assert eight.decode_tokens_per_s == pytest.approx(8 * one.decode_tokens_per_s)
    assert one.prefill_tokens_per_s is not None and one.prefill_tokens_per_s > 1000
    q4 = resolve_throughput(GPU, kb, model="llama-3.1-8b", quant="q4_k_m")
    assert "Q4_K_M" in q4.source and q4.decode_tokens_per_s > one.decode_tokens_per_s


def test_cpu_estimate_uses_the_calibrated_prefill_ratio() -> None:
    t = resolve_throughput(CPU, load_knowledge_base(), model="llama-3.2-1b")
    assert t.prefill_tokens_per_s == pytest.approx(3 * t.decode_tokens_per_s)
    assert "calibrated by gemma3-270m@1" in t.source


def test_calibration_is_the_fallback() -> None:
    t = resolve_throughput(CPU, load_knowledge_base(), streams=2)
    assert (t.decode_tokens_per_s, t.prefill_tokens_per_s) == (40.0, 60.0)


def test_errors() -> None:
    kb = load_knowledge_base()
    with pytest.raises(InvalidInput, match="no throughput"):
        resolve_throughput(GPU, kb)
    with pytest.raises(NotFound, match="no model 'gpt-9'"):
        resolve_throughput(GPU, kb, model="gpt-9")
    with pytest.raises(InvalidInput, match="cannot run on cpu"):
        resolve_throughput(CPU, kb, model="llama-3.1-405b")
    with pytest.raises(InvalidInput, match="streams"):
        resolve_throughput(CPU, kb, streams=0)


def _level(concurrency: int, aggregate: float, completed: int = 2) -> dict[str, object]:
    return {
        "concurrency": concurrency,
        "completed": completed,
        "aggregate_tokens_per_s": aggregate,
        "prompt_tokens_mean": 32.0,
        "ttft_s": {"p50": 2.0, "p90": 3.0, "p99": 3.1},
    }


def test_throughput_from_bench_output() -> None:
    # the shape `modelyard bench --json` prints (trimmed to the fields read)
    data = {
        "target": "gemma3-270m@1 (in process)",
        "levels": [_level(1, 0.83), _level(2, 2.96), _level(4, 0.0, completed=0)],
    }
    t = throughput_from_bench(data, "bench.json")
    assert t.decode_tokens_per_s == 2.96
    assert t.prefill_tokens_per_s == pytest.approx(16.0)  # 32 prompt tokens / 2.0 s
    assert "concurrency 2" in t.source
    with pytest.raises(InvalidInput, match="not `modelyard bench --json` output"):
        throughput_from_bench({"levels": [{"completed": 1}]}, "x.json")
    with pytest.raises(InvalidInput, match="no completed requests"):
        throughput_from_bench({"levels": [_level(1, 0.0, completed=0)]}, "x.json")
