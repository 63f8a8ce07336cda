"""Caching (issue 17): response-cache hits vs misses, and warm vs cold TTFT under a shared prefix.

One run, the bundled default model, one llama-server binary, one machine:

1. **Response cache.** ``modelyard serve`` on a fresh MODELYARD_HOME, a key created with
   ``keys create bench --cache on``. Each of ``--answers`` distinct prompts is sent twice as
   a non-streaming chat request (temperature 0, ``max_tokens`` 64, a prompt that asks for
   long text): the first is a miss (the engine answers), the second a hit. Reports the p50
   latency of each, the ratio hit/miss (target: at most 0.01) and the ``X-Modelyard-Cache``
   headers seen.
2. **Prefix reuse.** Streaming chat with a ~1,000-token system prompt: per round, one cold
   request (a system prompt no earlier request began with) then ``--warm`` requests with the
   same system prompt and different user questions. Sent with ``X-Modelyard-Cache:
   no-store`` so that only the engine's prompt reuse acts. Reports cold and warm TTFT p50
   and the ratio warm/cold (target: at most 0.2), through the gateway and, as the anchor,
   against ``llama-server`` run directly with the same binary and the flags an engine
   worker gets (slots, context, threads, prompt cache, slot similarity).

    .venv/bin/python bench/cache_bench.py [--threads 1] [--rounds 5] [--warm 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from serving_bench import (
    Server,
    Target,
    free_port,
    llama_server_path,
    model_path,
    modelyard_argv,
    percentile,
    run_report,
    wait_ready,
)

MODEL = "gemma3-270m"
RULES = (
    "Greet the caller by name when it is known, and never guess a name.",
    "Quote opening hours from the schedule section only; say when a holiday changes them.",
    "Never give a diagnosis; suggest booking an appointment with the right department.",
    "Prescriptions are renewed by the pharmacy desk, not by phone, within five working days.",
    "Parking is free for the first two hours with a ticket stamped at the reception desk.",
    "Interpreters for twelve languages can be booked one day ahead through the front desk.",
    "Test results are released to the patient portal after the doctor has reviewed them.",
    "Emergencies go to the emergency number at once; do not keep such callers on the line.",
)
QUESTIONS = (
    "When does the pharmacy open on Sundays?",
    "Can I renew my prescription by phone?",
    "Is parking free for visitors?",
    "How do I book an interpreter?",
    "When will my blood test results be ready?",
    "Which forms does a new patient fill in?",
    "Can my daughter collect my medicine?",
    "Where is the physiotherapy department?",
)


def system_prompt(round_: int) -> str:
    """About 1,000 tokens; the round number comes first, so no earlier prompt shares more
    than the chat template's first tokens with it."""
    lines = [f"Handbook edition {round_}. You are the assistant of the Riverside clinic."]
    for section in range(6):
        for rule in RULES:
            lines.append(f"Section {section + 1}: {rule}")
    return "\n".join(lines)


def long_answer_prompt(index: int) -> str:
    return f"Story no. {index}: write a long, detailed story about a lighthouse keeper."


@dataclass
class Timed:
    seconds: float
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache: str | None = None
    error: str | None = None


async def chat_once(http: httpx.AsyncClient, t: Target, body: dict[str, Any]) -> Timed:
    """One non-streaming chat request: latency, token counts, the cache header."""
    sent = time.perf_counter()
    resp = await http.post(t.base + "/v1/chat/completions", json=body, headers=t.headers)
    took = time.perf_counter() - sent
    if resp.status_code != 200:
        return Timed(took, error=f"HTTP {resp.status_code}: {resp.text[:200]}")
    usage = resp.json().get("usage") or {}
    return Timed(
        took,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        cache=resp.headers.get("x-modelyard-cache"),
    )


async def stream_ttft(
    http: httpx.AsyncClient, t: Target, body: dict[str, Any], headers: dict[str, str]
) -> Timed:
    """One streamed chat request: the time to its first content piece, and its usage."""
    out, sent = Timed(0.0), time.perf_counter()
    async with http.stream(
        "POST", t.base + "/v1/chat/completions", json=body, headers={**t.headers, **headers}
    ) as resp:
        if resp.status_code != 200:
            out.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
        async for line in resp.aiter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            chunk = json.loads(line[5:])
            if chunk.get("error"):
                out.error = str(chunk["error"])
            if isinstance(chunk.get("usage"), dict):
                out.prompt_tokens = chunk["usage"].get("prompt_tokens")
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content") and out.ttft_s is None:
                    out.ttft_s = time.perf_counter() - sent
    out.seconds = time.perf_counter() - sent
    return out


def client(t: Target) -> httpx.AsyncClient:
    """Kept-alive connections to the gateway, as its clients use it; a new connection per
    request to llama-server run directly: over TCP the pinned build was seen to exit (status
    0, "cleaning up before exit") when a kept-alive connection was reused after a stream."""
    keep = None if t.health == "/healthz" else 0
    return httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_keepalive_connections=keep))


def p50_ms(values: list[float]) -> float | None:
    found = percentile(values, 50)
    return None if found is None else round(found * 1000, 2)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 4)


async def response_cache(t: Target, answers: int, first: int = 0) -> dict[str, Any]:
    misses, hits, headers, tokens, errors = [], [], [], [], []
    async with client(t) as http:
        for index in range(first, first + answers):
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": long_answer_prompt(index)}],
                "max_tokens": 64,
                "temperature": 0,
            }
            miss, hit = await chat_once(http, t, body), await chat_once(http, t, body)
            for one in (miss, hit):
                if one.error:
                    errors.append(one.error)
            misses.append(miss.seconds)
            hits.append(hit.seconds)
            headers.append(f"{miss.cache}/{hit.cache}")
            tokens.append(miss.completion_tokens)
    miss_p50, hit_p50 = p50_ms(misses), p50_ms(hits)
    return {
        "answers": answers,
        "miss_p50_ms": miss_p50,
        "hit_p50_ms": hit_p50,
        "hit_p90_ms": None if not hits else round((percentile(hits, 90) or 0) * 1000, 2),
        "hit_over_miss": ratio(hit_p50, miss_p50),
        "target_met": (ratio(hit_p50, miss_p50) or 1) <= 0.01,
        "headers_miss_hit": sorted(set(headers)),
        "completion_tokens": sorted({x for x in tokens if x is not None}),
        "errors": errors[:5],
    }


async def prefix_reuse(t: Target, args: argparse.Namespace, first_round: int) -> dict[str, Any]:
    cold: list[float] = []
    warm: list[float] = []
    prompt_tokens: set[int] = set()
    errors: list[str] = []
    no_store = {"X-Modelyard-Cache": "no-store"} if t.health == "/healthz" else {}
    async with client(t) as http:
        for round_ in range(first_round, first_round + args.rounds):
            system = system_prompt(round_)
            for i in range(1 + args.warm):
                question = QUESTIONS[(round_ + i) % len(QUESTIONS)] + f" (caller {round_}-{i})"
                body = {
                    "model": MODEL,
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": question},
                    ],
                    "max_tokens": 8,
                    "temperature": 0.7,
                    "seed": round_ * 100 + i,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
                one = await stream_ttft(http, t, body, no_store)
                if one.error or one.ttft_s is None:
                    errors.append(one.error or "no content")
                    continue
                (warm if i else cold).append(one.ttft_s)
                if one.prompt_tokens:
                    prompt_tokens.add(one.prompt_tokens)
    cold_p50, warm_p50 = p50_ms(cold), p50_ms(warm)
    return {
        "rounds": args.rounds,
        "warm_per_round": args.warm,
        "prompt_tokens": sorted(prompt_tokens),
        "cold_ttft_p50_ms": cold_p50,
        "warm_ttft_p50_ms": warm_p50,
        "warm_over_cold": ratio(warm_p50, cold_p50),
        "target_met": (ratio(warm_p50, cold_p50) or 1) <= 0.2,
        "errors": errors[:5],
    }


def create_key(args: argparse.Namespace, env: dict[str, str]) -> str:
    argv = [*modelyard_argv(args), "keys", "create", "bench", "--json", "--cache", "on"]
    argv += ["--tokens-per-day", "100000000"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"modelyard keys create failed:\n{out.stderr[-2000:]}")
    return str(json.loads(out.stdout)["key"])


async def run_modelyard(args: argparse.Namespace, work: Path, binary: str) -> dict[str, Any]:
    worker = {"SLOTS": args.slots, "THREADS": args.threads, "CTX_PER_SLOT": args.ctx_per_slot}
    env = {**os.environ, "MODELYARD_HOME": str(work / "home"), "MODELYARD_LLAMA_SERVER": binary}
    env.update({f"MODELYARD_WORKER_{k}": str(v) for k, v in worker.items()})
    auth = {"Authorization": f"Bearer {create_key(args, env)}"}
    port = free_port()
    argv = [*modelyard_argv(args), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = Server(argv, env, work / "modelyard.log")
    target = Target(f"http://127.0.0.1:{port}", "/healthz", auth)
    try:
        await wait_ready(server, target.base + target.health, args.startup_timeout)
        await response_cache(target, 1, first=10**6)  # start the worker; never asked again
        return {
            "response_cache": await response_cache(target, args.answers),
            "prefix": await prefix_reuse(target, args, first_round=1),
        }
    finally:
        server.stop()


async def run_direct(args: argparse.Namespace, work: Path, binary: str) -> dict[str, Any]:
    port, n = free_port(), str(args.threads)
    argv = [binary, "-m", str(model_path(args, work)), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["-np", str(args.slots), "-c", str(args.slots * args.ctx_per_slot), "-t", n, "-tb", n]
    # What an engine worker gets (worker_process.worker_args), bar the socket and the secret.
    argv += ["-cb", "--no-kv-unified", "--no-context-shift", "--no-webui", "--no-repack"]
    argv += ["--cache-ram", "2048", "--slot-prompt-similarity", "0.5", *args.llama_arg]
    server = Server(argv, dict(os.environ), work / "direct.log")
    target = Target(f"http://127.0.0.1:{port}", "/health", {})
    try:
        await wait_ready(server, target.base + target.health, args.startup_timeout)
        async with client(target) as http:  # the same warm-up as modelyard's
            body = {"model": MODEL, "max_tokens": 64, "temperature": 0}
            body["messages"] = [{"role": "user", "content": long_answer_prompt(10**6)}]
            await chat_once(http, target, body)
        return {"prefix": await prefix_reuse(target, args, first_round=1000)}
    finally:
        server.stop()


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    binary = llama_server_path(args)
    report: dict[str, Any] = {"machine_before": machine()}
    if not args.only_direct:
        report["modelyard"] = await run_modelyard(args, work, binary)
    if not args.no_direct:
        report["direct"] = await run_direct(args, work, binary)
    report["machine_after"] = machine()
    return report


def render(report: dict[str, Any]) -> None:
    if "modelyard" in report:
        rc = report["modelyard"]["response_cache"]
        print(f"response cache ({rc['answers']} answers of {rc['completion_tokens']} tokens):")
        print(f"  miss p50 {rc['miss_p50_ms']} ms, hit p50 {rc['hit_p50_ms']} ms", end="")
        print(f" (p90 {rc['hit_p90_ms']} ms),")
        print(f"  hit/miss {rc['hit_over_miss']} (target <= 0.01: {rc['target_met']})")
        print(f"  headers miss/hit {rc['headers_miss_hit']}; errors {rc['errors']}")
    for side in ("modelyard", "direct"):
        if side in report:
            p = report[side]["prefix"]
            print(f"prefix reuse, {side} (prompt tokens {p['prompt_tokens']}):")
            print(f"  cold TTFT p50 {p['cold_ttft_p50_ms']} ms, warm {p['warm_ttft_p50_ms']} ms,")
            print(f"  warm/cold {p['warm_over_cold']} (target <= 0.2: {p['target_met']})")
            print(f"  errors {p['errors']}")
    print(f"machine: before {report['machine_before']}, after {report['machine_after']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llama-server", type=Path, help="llama-server binary (default: build cache)")
    p.add_argument("--model", type=Path, help="GGUF for the direct side (default: bundled)")
    p.add_argument("--modelyard", help="command that runs modelyard (default: on PATH)")
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--ctx-per-slot", type=int, default=4096)
    p.add_argument("--answers", type=int, default=10, help="response-cache prompts (miss+hit)")
    p.add_argument("--rounds", type=int, default=5, help="prefix rounds (each one cold)")
    p.add_argument("--warm", type=int, default=4, help="warm requests per round")
    p.add_argument("--no-direct", action="store_true", help="skip the llama-server anchor")
    p.add_argument("--llama-arg", action="append", default=[], help="extra direct-side flag")
    p.add_argument("--startup-timeout", type=float, default=600)
    p.add_argument("--only-direct", action="store_true", help="only the llama-server anchor")
    p.add_argument("--work", type=Path, help="keep the servers' logs here (default: a temp dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run_report(parse_args(argv), bench, render, "modelyard-cache-bench-")


if __name__ == "__main__":
    main()
