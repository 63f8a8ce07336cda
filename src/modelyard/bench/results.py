"""What one request measured, and the per-level summary built from many of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from modelyard.evaluate.stats import percentile


@dataclass
class RequestResult:
    """Times are seconds since the request was sent."""

    ok: bool = False
    error: str | None = None
    ttft_s: float | None = None
    end_s: float = 0.0
    chunk_times: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int | None = None
    usage_reported: bool = False

    def gaps(self) -> list[float]:
        times = self.chunk_times
        return [b - a for a, b in pairwise(times)]


def _pcts(values: Sequence[float]) -> dict[str, float | None]:
    return {f"p{q}": percentile(values, q) for q in (50, 90, 99)}


@dataclass(frozen=True)
class LevelResult:
    concurrency: int
    sent: int
    completed: int
    errors: int
    duration_s: float
    requests_per_s: float
    output_tokens: int
    output_tokens_mean: float | None
    prompt_tokens_mean: float | None
    aggregate_tokens_per_s: float
    per_stream_tokens_per_s: float | None
    ttft_s: dict[str, float | None]
    itl_s: dict[str, float | None]
    latency_s: dict[str, float | None]
    error_samples: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_samples"] = list(self.error_samples)
        return data


def summarise_level(
    concurrency: int, results: Sequence[RequestResult], duration_s: float
) -> LevelResult:
    done = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    tokens = sum(r.output_tokens for r in done)
    streams = [
        (r.output_tokens - 1) / (r.end_s - r.ttft_s)
        for r in done
        if r.ttft_s is not None and r.output_tokens > 1 and r.end_s > r.ttft_s
    ]
    prompts = [r.prompt_tokens for r in done if r.prompt_tokens is not None]
    samples = tuple(dict.fromkeys(r.error or "unknown error" for r in failed))[:5]
    return LevelResult(
        concurrency=concurrency,
        sent=len(results),
        completed=len(done),
        errors=len(failed),
        duration_s=duration_s,
        requests_per_s=len(done) / duration_s if duration_s > 0 else 0.0,
        output_tokens=tokens,
        output_tokens_mean=tokens / len(done) if done else None,
        prompt_tokens_mean=sum(prompts) / len(prompts) if prompts else None,
        aggregate_tokens_per_s=tokens / duration_s if duration_s > 0 else 0.0,
        per_stream_tokens_per_s=sum(streams) / len(streams) if streams else None,
        ttft_s=_pcts([r.ttft_s for r in done if r.ttft_s is not None]),
        itl_s=_pcts([gap for r in done for gap in r.gaps()]),
        latency_s=_pcts([r.end_s for r in done]),
        error_samples=samples,
    )
