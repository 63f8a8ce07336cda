"""The measurements a capacity plan stands on, read from the benchmarks' ``--json`` output.

* an engine replica: ``modelyard bench --json`` run against one replica (``--url`` at the
  engine itself, or a model served by one worker): per concurrency level, the median time
  to first token, the per-stream decode speed and the prompt length it used;
* a gateway process: ``bench/gateway_bench.py --json`` (gateway processes in front of a
  fast stub engine): the rate of its level with the fewest processes, per process;
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
    """Requests per second of one gateway process with a core of its own.

    From ``bench/gateway_bench.py --json``, the level with the fewest processes: its requests
    per CPU-second of the gateway processes (``requests_per_gateway_cpu_s``), which does not
    depend on what else shared the benchmark machine's cores; from an older file without
    it, that level's requests per second divided by its processes. From a plain
    ``modelyard bench --json`` sweep against one process, its best level."""
    try:
        levels = [lv for lv in data["levels"] if lv["completed"] > 0]
        if levels and "processes" in levels[0]:
            fewest = min(levels, key=lambda lv: int(lv["processes"]))
            per_core = fewest.get("requests_per_gateway_cpu_s")
            if per_core is not None:
                rates = [float(per_core)]
            else:
                rates = [float(fewest["requests_per_s"]) / int(fewest["processes"])]
        else:
            rates = [float(lv["requests_per_s"]) for lv in levels]
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise InvalidInput(f"{origin} is not `modelyard bench --json` output ({exc})") from exc
    if not rates or max(rates) <= 0:
        raise InvalidInput(f"{origin}: the benchmark completed no requests")
    return max(rates)


def audit_appends_per_s(data: Any, origin: str) -> float:
    """Appends per second from ``bench/audit_bench.py --json`` (its ``per_second``)."""
    try:
        rate = float(data["per_second"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{origin} is not `bench/audit_bench.py --json` output ({exc})") from exc
    if rate <= 0:
        raise InvalidInput(f"{origin}: the audit benchmark measured no appends")
    return rate
