"""The measurements a capacity plan stands on, read from the benchmarks' ``--json`` output.

* an engine replica: ``modelyard bench --json`` run against one replica (``--url`` at the
  engine itself, or a model served by one worker): per concurrency level, the median time
  to first token, the per-stream decode speed and the prompt length it used;
* a gateway process: ``modelyard bench --json`` against one gateway process in front of a
  fast engine (the stub in ``bench/gateway_bench.py``): its best requests per second;
* the audit log: ``bench/audit_bench.py --json``: appends per second into the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInput


@dataclass(frozen=True)
class EngineLevel:
    """One concurrency level of an engine benchmark."""

    concurrency: int
    prompt_tokens: float
    ttft_s: float
    stream_tokens_per_s: float


@dataclass(frozen=True)
class EngineBench:
    target: str
    levels: tuple[EngineLevel, ...]


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc}") from exc


def engine_bench(data: Any, origin: str) -> EngineBench:
    """Levels with completed requests and everything the model needs (others are skipped)."""
    try:
        levels = []
        for level in data["levels"]:
            prompt, ttft = level.get("prompt_tokens_mean"), level["ttft_s"].get("p50")
            stream = level.get("per_stream_tokens_per_s")
            if level["completed"] > 0 and prompt and ttft and stream:
                levels.append(
                    EngineLevel(
                        int(level["concurrency"]), float(prompt), float(ttft), float(stream)
                    )
                )
        target = str(data.get("target", "?"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{origin} is not `modelyard bench --json` output ({exc})") from exc
    if not levels:
        raise InvalidInput(
            f"{origin}: no level with completed requests, prompt lengths, TTFT and stream speed"
        )
    return EngineBench(target, tuple(sorted(levels, key=lambda lv: lv.concurrency)))


def best_requests_per_s(data: Any, origin: str) -> float:
    """The best completed requests per second over a ``modelyard bench --json`` sweep."""
    try:
        rates = [float(lv["requests_per_s"]) for lv in data["levels"] if lv["completed"] > 0]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{origin} is not `modelyard bench --json` output ({exc})") from exc
    if not rates or max(rates) <= 0:
        raise InvalidInput(f"{origin}: the benchmark completed no requests")
    return max(rates)


def audit_appends_per_s(data: Any, origin: str) -> float:
    """Appends per second from ``bench/audit_bench.py --json``."""
    try:
        rate = float(data["appends_per_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{origin} is not `bench/audit_bench.py --json` output ({exc})") from exc
    if rate <= 0:
        raise InvalidInput(f"{origin}: the audit benchmark measured no appends")
    return rate
