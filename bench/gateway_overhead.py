"""Gateway overhead: single-stream decode speed through `modelyard serve` vs llama-cpp-python
called directly in one process (same model, prompt, settings), plus time to first token and
/healthz latency while a generation runs.

    .venv/bin/python bench/gateway_overhead.py [--threads 2] [--max-tokens 128] [--runs 3]

It uses a temporary MODELYARD_HOME with the bundled default model (Gemma 3 270M Q4_K_M),
one worker slot, greedy decoding (temperature 0), and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

PROMPT = "Write a long story about a dragon who learns to cook:"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(home: Path) -> tuple[Path, str]:
    from modelyard.catalog.lifecycle import Stage
    from modelyard.catalog.promotion import place
    from modelyard.catalog.registry import Registry
    from modelyard.config import Settings
    from modelyard.governance.keys import KeyStore
    from modelyard.intake.default_model import import_default
    from modelyard.intake.importer import open_blob_store
    from modelyard.store.database import Database

    settings = Settings(home=home)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    registry = Registry(db, open_blob_store(settings))
    version, _ = import_default(registry, settings)
    place(registry, version.ref, Stage.PRODUCTION, actor="bench", reason="bench")
    _, key = KeyStore(db).create("bench", admin=True, created_by="bench")
    db.close()
    return registry.blobs.path_for(version.digest), key


class Direct:
    """llama-cpp-python called directly, in this process, the way its own docs show."""

    def __init__(self, model: Path, threads: int, n_ctx: int) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(
            model_path=str(model), n_ctx=n_ctx, n_threads=threads, verbose=False
        )

    def run(self, prompt: str, max_tokens: int) -> dict[str, float]:
        started = time.perf_counter()
        stamps = []
        for chunk in self.llm.create_completion(
            prompt, max_tokens=max_tokens, temperature=0.0, top_k=40, top_p=1.0, stream=True
        ):
            if chunk["choices"][0]["text"]:
                stamps.append(time.perf_counter())
        return _rates(started, stamps, len(stamps))

    def close(self) -> None:
        self.llm.close()


def _rates(started: float, stamps: list[float], tokens: int) -> dict[str, float]:
    decode = stamps[-1] - stamps[0]
    return {
        "ttft_s": stamps[0] - started,
        "tokens": tokens,
        "decode_tok_s": (tokens - 1) / decode if decode > 0 else float("nan"),
    }


def _gateway_run(
    http: httpx.Client, url: str, key: str, prompt: str, max_tokens: int
) -> dict[str, float]:
    body = {
        "model": "gemma3-270m",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "top_p": 1.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    stamps: list[float] = []
    tokens = 0
    headers = {"Authorization": f"Bearer {key}"}
    with http.stream("POST", f"{url}/v1/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["text"]:
                stamps.append(time.perf_counter())
    return _rates(started, stamps, tokens)


def _healthz_while_generating(url: str, key: str) -> dict[str, float]:
    body = {"model": "gemma3-270m", "prompt": PROMPT, "max_tokens": 96, "temperature": 0}
    headers = {"Authorization": f"Bearer {key}"}
    worker = threading.Thread(
        target=lambda: httpx.post(f"{url}/v1/completions", json=body, headers=headers, timeout=600)
    )
    worker.start()
    time.sleep(0.3)
    timings = []
    with httpx.Client() as http:
        while worker.is_alive() and len(timings) < 200:
            started = time.perf_counter()
            http.get(f"{url}/healthz")
            timings.append(time.perf_counter() - started)
            time.sleep(0.02)
    worker.join()
    timings.sort()
    return {
        "samples": len(timings),
        "p50_ms": 1000 * timings[len(timings) // 2],
        "p99_ms": 1000 * timings[int(len(timings) * 0.99) - 1 if len(timings) > 1 else 0],
        "max_ms": 1000 * timings[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as tmp:
        home = Path(tmp) / "home"
        model, key = _prepare(home)
        port = _free_port()
        env = {
            **os.environ,
            "MODELYARD_HOME": str(home),
            "MODELYARD_N_THREADS": str(args.threads),
            "MODELYARD_N_CTX": str(args.n_ctx),
            "MODELYARD_GATEWAY_WORKERS": "1",
        }
        env.pop("MODELYARD_DATABASE_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        direct_engine = Direct(model, args.threads, args.n_ctx)
        direct: list[dict[str, float]] = []
        gateway: list[dict[str, float]] = []
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            with httpx.Client(timeout=600) as http:
                # One warm-up each, then alternate so both sides see the same machine load.
                direct_engine.run(PROMPT, args.max_tokens)
                _gateway_run(http, url, key, PROMPT, args.max_tokens)
                for run in range(args.runs):
                    # A fresh prompt each run: no KV-cache prefix reuse flatters the TTFT.
                    prompt = f"Story {run + 1}. {PROMPT}"
                    direct.append(direct_engine.run(prompt, args.max_tokens))
                    gateway.append(_gateway_run(http, url, key, prompt, args.max_tokens))
            direct_engine.close()
            health = _healthz_while_generating(url, key)
        finally:
            server.terminate()
            server.wait(timeout=30)
    direct_rate = statistics.median(r["decode_tok_s"] for r in direct)
    gateway_rate = statistics.median(r["decode_tok_s"] for r in gateway)
    report: dict[str, Any] = {
        "model": "gemma3-270m (Q4_K_M)",
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "runs": args.runs,
        "direct_decode_tok_s": round(direct_rate, 2),
        "gateway_decode_tok_s": round(gateway_rate, 2),
        "ratio": round(gateway_rate / direct_rate, 3),
        "direct_ttft_ms": round(1000 * statistics.median(r["ttft_s"] for r in direct), 1),
        "gateway_ttft_ms": round(1000 * statistics.median(r["ttft_s"] for r in gateway), 1),
        "tokens_direct": [r["tokens"] for r in direct],
        "tokens_gateway": [r["tokens"] for r in gateway],
        "healthz_while_generating": {k: round(v, 2) for k, v in health.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
