"""Batch API: interactive latency while a batch runs, and the batch's own throughput.

One run, the bundled default model (gemma3-270m), one machine. ``modelyard serve`` on a fresh
MODELYARD_HOME (SQLite, in a temp dir), a free port, a normal key made with ``keys create``
(response cache off, a large token budget); MODELYARD_WORKER_THREADS / _SLOTS set only when
``--threads`` / ``--slots`` are given:

1. **Baseline.** ``--interactive-concurrency`` clients send streaming chat requests
   (distinct short prompts, ``max_tokens`` 32, temperature 0) back to back for
   ``--interactive-s`` seconds. Reports TTFT and total latency p50/p90 and requests/s.
2. **With a batch.** A JSONL of ``--lines`` chat lines (distinct short prompts, ``max_tokens``
   32, temperature 0.0) is uploaded and submitted with the official ``openai`` client
   (``files.create``, ``batches.create``). As soon as the batch is seen ``in_progress`` the same
   interactive load runs again, for the same time; the batch is polled (``batches.retrieve``)
   until it ends. The "with batch" figures count only the interactive requests that were sent
   and finished while the batch was running (``in_progress`` seen, ``finalizing`` not yet).
3. **The batch.** Its output file (``files.content``) must hold one line per input line, in
   input order, each a status-200 body. Reports the batch's wall time (submit to end) and run
   time (``in_progress`` to ``finalizing``/end, as polled), lines/s and completion tokens/s
   over the run time (the sum of ``usage.completion_tokens`` in the output), and failed lines.

The target is interactive TTFT p50 with the batch at most 1.5 x the baseline's: batch lines
take only idle engine slots, so interactive requests should barely notice them.

    .venv/bin/python bench/batch_bench.py [--lines 500] [--interactive-s 30]
        [--interactive-concurrency 1] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from openai import AsyncOpenAI
from serving_bench import (
    Server,
    Target,
    free_port,
    llama_server_path,
    modelyard_argv,
    percentile,
    run_report,
    wait_ready,
)

MODEL = "gemma3-270m"
MAX_TOKENS = 32
TARGET_TTFT_RATIO = 1.5
TOPICS = (
    "a lighthouse",
    "a glacier",
    "a violin",
    "a beehive",
    "a comet",
    "a windmill",
    "a coral reef",
    "a printing press",
    "a volcano",
    "a compass",
)
BASELINE_FIRST, WITH_BATCH_FIRST, BATCH_FIRST, WARM_UP = 0, 100_000, 200_000, 10**6
"""Prompt numbers per phase: no prompt is sent twice, so no phase reuses another's answers."""
RUNNING = ("in_progress", "finalizing", "completed")
ENDED = ("finalizing", "completed", "failed", "expired", "cancelling", "cancelled")
TERMINAL = ("completed", "failed", "expired", "cancelled")


def prompt(index: int) -> str:
    """A distinct short prompt; the number comes first, so prompts differ within a few tokens."""
    return f"Note {index}: in one sentence, what is {TOPICS[index % len(TOPICS)]}?"


def chat_body(index: int) -> dict[str, Any]:
    messages = [{"role": "user", "content": prompt(index)}]
    return {"model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0.0}


# ---------------------------------------------------------------- interactive load


@dataclass
class Request:
    """One streamed chat request; times are ``time.perf_counter()`` readings."""

    sent: float
    ended: float = 0.0
    first: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.first is not None


@dataclass
class Load:
    """One interactive load: its requests and when it began and ended."""

    began: float
    ended: float
    requests: list[Request] = field(default_factory=list)


async def stream_chat(http: httpx.AsyncClient, t: Target, index: int) -> Request:
    """One streamed chat request: the time to its first content piece, and to its end."""
    body = {**chat_body(index), "stream": True, "stream_options": {"include_usage": True}}
    req = Request(time.perf_counter())
    try:
        async with http.stream(
            "POST", t.base + "/v1/chat/completions", json=body, headers=t.headers
        ) as resp:
            if resp.status_code != 200:
                req.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
            async for line in resp.aiter_lines():
                read_frame(req, line)
    except httpx.HTTPError as exc:
        req.error = f"{type(exc).__name__}: {exc}"
    req.ended = time.perf_counter()
    if req.error is None and req.first is None:
        req.error = "no content"
    return req


def read_frame(req: Request, line: str) -> None:
    """Apply one SSE line: note the first content piece, or an error event."""
    if not line.startswith("data:") or line[5:].strip() == "[DONE]":
        return
    chunk = json.loads(line[5:])
    if chunk.get("error"):
        req.error = str(chunk["error"])
    for choice in chunk.get("choices") or []:
        if (choice.get("delta") or {}).get("content") and req.first is None:
            req.first = time.perf_counter()


async def interactive_load(t: Target, clients: int, seconds: float, first_index: int) -> Load:
    """``clients`` loops that each send a request as soon as their last one ended, until
    ``seconds`` have passed (requests under way then are finished, and counted)."""
    numbers = itertools.count(first_index)
    load = Load(time.perf_counter(), 0.0)
    deadline = load.began + seconds
    async with httpx.AsyncClient(timeout=httpx.Timeout(300, connect=10)) as http:

        async def client_loop() -> None:
            while time.perf_counter() < deadline:
                load.requests.append(await stream_chat(http, t, next(numbers)))

        await asyncio.gather(*(client_loop() for _ in range(clients)))
    load.ended = time.perf_counter()
    return load


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summarise(requests: list[Request], window_s: float) -> dict[str, Any]:
    """TTFT and latency percentiles of the requests that succeeded, and requests/s."""
    ok = [r for r in requests if r.ok]
    ttft = [r.first - r.sent for r in ok if r.first is not None]
    latency = [r.ended - r.sent for r in ok]
    return {
        "requests": len(requests),
        "ok": len(ok),
        "window_s": round(window_s, 2),
        "req_s": round(len(ok) / window_s, 3) if window_s > 0 else None,
        "ttft_p50_ms": ms(percentile(ttft, 50)),
        "ttft_p90_ms": ms(percentile(ttft, 90)),
        "latency_p50_ms": ms(percentile(latency, 50)),
        "latency_p90_ms": ms(percentile(latency, 90)),
        "errors": sorted({r.error for r in requests if r.error})[:3],
    }


# ---------------------------------------------------------------- the batch


@dataclass
class BatchWatch:
    """What polling saw of one batch; times are ``time.perf_counter()`` readings."""

    submitted: float
    running: float | None = None
    ended: float | None = None
    timed_out: bool = False
    last: Any = None
    started: asyncio.Event = field(default_factory=asyncio.Event)


def write_input(path: Path, lines: int) -> None:
    """The batch input: one chat line per prompt, custom ids ``line-0`` … in order."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(lines):
            line = {
                "custom_id": f"line-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": chat_body(BATCH_FIRST + i),
            }
            out.write(json.dumps(line) + "\n")


async def submit(client: AsyncOpenAI, path: Path) -> tuple[str, BatchWatch]:
    """Upload the input file and create the batch; the watch's clock starts at the upload."""
    watch = BatchWatch(time.perf_counter())
    with path.open("rb") as handle:
        uploaded = await client.files.create(file=handle, purpose="batch")
    batch = await client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"bench": "batch_bench"},
    )
    watch.last = batch
    return batch.id, watch


async def watch_batch(
    client: AsyncOpenAI, batch_id: str, watch: BatchWatch, poll_s: float, timeout_s: float
) -> None:
    """Poll until the batch ends; past ``timeout_s`` cancel it once and wait for that.
    ``watch.started`` is set however this ends, so that nothing waits on it forever."""
    try:
        await _poll(client, batch_id, watch, poll_s, watch.submitted + timeout_s)
    finally:
        watch.started.set()


async def _poll(
    client: AsyncOpenAI, batch_id: str, watch: BatchWatch, poll_s: float, deadline: float
) -> None:
    while True:
        batch = await client.batches.retrieve(batch_id)
        now, watch.last = time.perf_counter(), batch
        if batch.status in RUNNING and watch.running is None:
            watch.running = now
        if batch.status in ENDED and watch.ended is None:
            watch.ended = now
        if batch.status in RUNNING or batch.status in TERMINAL:
            watch.started.set()
        if batch.status in TERMINAL or (watch.timed_out and now > deadline + 120):
            return
        if now > deadline and not watch.timed_out:
            watch.timed_out = True
            await client.batches.cancel(batch_id)
        await asyncio.sleep(poll_s)


async def read_output(client: AsyncOpenAI, batch: Any, lines: int) -> dict[str, Any]:
    """Check the output file line by line: order, status 200, usage; count the failures."""
    found: dict[str, Any] = {"output_lines": 0, "failed_lines": lines, "completion_tokens": 0}
    if batch.error_file_id:
        errors = (await client.files.content(batch.error_file_id)).content
        found["error_file_lines"] = len(errors.splitlines())
    if not batch.output_file_id:
        found["problems"] = ["no output file"]
        return found
    content = (await client.files.content(batch.output_file_id)).content
    rows = [json.loads(x) for x in content.splitlines() if x.strip()]
    found["output_lines"] = len(rows)
    problems, failed, tokens = [], 0, 0
    for i, row in enumerate(rows):
        response = row.get("response") or {}
        if row.get("custom_id") != f"line-{i}":
            problems.append(f"line {i}: custom_id {row.get('custom_id')!r}")
        if response.get("status_code") != 200 or row.get("error"):
            failed += 1
            problems.append(f"line {i}: {row.get('error') or str(response)[:200]}")
            continue
        usage = (response.get("body") or {}).get("usage") or {}
        tokens += int(usage.get("completion_tokens") or 0)
    if len(rows) != lines:
        problems.insert(0, f"{len(rows)} output lines for {lines} input lines")
    found.update(failed_lines=failed + max(0, lines - len(rows)), completion_tokens=tokens)
    found["problems"] = problems[:5]
    return found


def batch_report(watch: BatchWatch, lines: int, output: dict[str, Any]) -> dict[str, Any]:
    """Wall time (upload to end), run time (in_progress to end), and the rates over it."""
    batch = watch.last
    end = watch.ended or time.perf_counter()
    run_s = end - watch.running if watch.running is not None else None
    done = output["output_lines"] - output["failed_lines"]
    return {
        "id": batch.id,
        "status": batch.status,
        "timed_out": watch.timed_out,
        "lines": lines,
        "request_counts": batch.request_counts.model_dump() if batch.request_counts else None,
        "errors": batch.errors.model_dump() if batch.errors else None,
        "wall_s": round(end - watch.submitted, 2),
        "run_s": None if run_s is None else round(run_s, 2),
        "lines_s": round(done / run_s, 3) if run_s else None,
        "completion_tok_s": round(output["completion_tokens"] / run_s, 1) if run_s else None,
        "server_times": {
            k: getattr(batch, k)
            for k in ("created_at", "in_progress_at", "finalizing_at", "completed_at")
        },
        **output,
    }


def overlap(load: Load, watch: BatchWatch) -> tuple[list[Request], float]:
    """The requests sent and finished while the batch ran, and the time both ran together."""
    if watch.running is None:
        return [], 0.0
    end = watch.ended if watch.ended is not None else float("inf")
    inside = [r for r in load.requests if r.sent >= watch.running and r.ended <= end]
    return inside, max(0.0, min(load.ended, end) - max(load.began, watch.running))


async def with_batch(
    args: argparse.Namespace, t: Target, key: str, work: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit the batch, run the interactive load while it runs, then check its output."""
    path = work / "batch-input.jsonl"
    write_input(path, args.lines)
    async with AsyncOpenAI(base_url=t.base + "/v1", api_key=key, timeout=120) as client:
        batch_id, watch = await submit(client, path)
        note(f"batch {batch_id} submitted ({args.lines} lines)")
        poller = asyncio.create_task(
            watch_batch(client, batch_id, watch, args.poll_s, args.batch_timeout)
        )
        await watch.started.wait()
        interactive: dict[str, Any] = {"skipped": f"batch {watch.last.status} before it ran"}
        if watch.running is not None and watch.ended is None:
            note(f"batch in_progress; interactive load for {args.interactive_s:.0f}s")
            load = await interactive_load(
                t, args.interactive_concurrency, args.interactive_s, WITH_BATCH_FIRST
            )
            inside, window_s = overlap(load, watch)
            interactive = summarise(inside, window_s)
            interactive["all"] = summarise(load.requests, load.ended - load.began)
        note("waiting for the batch to end")
        await poller
        output = await read_output(client, watch.last, args.lines)
    return interactive, batch_report(watch, args.lines, output)


# ---------------------------------------------------------------- the gateway


def gateway_env(args: argparse.Namespace, work: Path) -> dict[str, str]:
    env = {**os.environ, "MODELYARD_HOME": str(work / "home")}
    env["MODELYARD_LLAMA_SERVER"] = llama_server_path(args)
    if args.threads is not None:
        env["MODELYARD_WORKER_THREADS"] = str(args.threads)
    if args.slots is not None:
        env["MODELYARD_WORKER_SLOTS"] = str(args.slots)
    for setting in args.env:
        name, _, value = setting.partition("=")
        env[name if name.startswith("MODELYARD_") else f"MODELYARD_{name}"] = value
    return env


def create_key(args: argparse.Namespace, env: dict[str, str]) -> str:
    """A normal (non-admin) key: response cache off, so every request reaches the engine."""
    argv = [*modelyard_argv(args), "keys", "create", "batch-bench", "--json", "--cache", "off"]
    argv += ["--tokens-per-day", "100000000"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"modelyard keys create failed:\n{out.stderr[-2000:]}")
    return str(json.loads(out.stdout)["key"])


async def require_batch_api(t: Target) -> None:
    """Exit when the gateway has no Batch API: an empty ``POST /v1/batches`` is a 400, not
    a 404, where the route exists."""
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(t.base + "/v1/batches", json={}, headers=t.headers)
    if resp.status_code == 404:
        sys.exit(
            f"POST /v1/batches answered 404: this gateway has no Batch API ({resp.text[:200]})"
        )


async def warm_up(t: Target) -> None:
    """One request starts the engine worker, so that neither phase pays for the start."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=10)) as http:
        req = await stream_chat(http, t, WARM_UP)
    if not req.ok:
        raise RuntimeError(f"warm-up request failed: {req.error}")


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def compare(without: dict[str, Any], with_: dict[str, Any]) -> dict[str, Any]:
    keys = ("ttft_p50_ms", "ttft_p90_ms", "latency_p50_ms", "latency_p90_ms", "req_s")
    out: dict[str, Any] = {k: ratio(with_.get(k), without.get(k)) for k in keys}
    found = out["ttft_p50_ms"]
    out["target_ttft_p50_ratio"] = TARGET_TTFT_RATIO
    out["target_met"] = None if found is None else found <= TARGET_TTFT_RATIO
    return out


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"machine_before": machine()}
    env = gateway_env(args, work)
    key = create_key(args, env)
    port = free_port()
    argv = [*modelyard_argv(args), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = Server(argv, env, work / "modelyard.log")
    target = Target(f"http://127.0.0.1:{port}", "/healthz", {"Authorization": f"Bearer {key}"})
    try:
        await wait_ready(server, target.base + target.health, args.startup_timeout)
        await require_batch_api(target)
        await warm_up(target)
        note(f"baseline: interactive load for {args.interactive_s:.0f}s")
        load = await interactive_load(
            target, args.interactive_concurrency, args.interactive_s, BASELINE_FIRST
        )
        report["without_batch"] = summarise(load.requests, load.ended - load.began)
        report["with_batch"], report["batch"] = await with_batch(args, target, key, work)
    finally:
        server.stop()
    report["ratio_with_over_without"] = compare(report["without_batch"], report["with_batch"])
    report["machine_after"] = machine()
    return report


# ---------------------------------------------------------------- output


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    without, with_ = report["without_batch"], report["with_batch"]
    ratios, batch = report["ratio_with_over_without"], report["batch"]
    table = Table(title="interactive streaming chat, without and with a batch running")
    for col in ("", "without batch", "with batch", "ratio with/without"):
        table.add_column(col, justify="right")
    counts = [f"{x.get('ok', '-')}/{x.get('requests', '-')}" for x in (without, with_)]
    table.add_row("requests ok", *counts, "")
    for key in ("ttft_p50_ms", "ttft_p90_ms", "latency_p50_ms", "latency_p90_ms", "req_s"):
        spec = ".2f" if key == "req_s" else ".1f"
        cells = [_fmt(x.get(key), spec) for x in (without, with_)]
        table.add_row(key, *cells, _fmt(ratios[key], ".2f"))
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(table)
    console.print(
        f"TTFT p50 with/without {_fmt(ratios['ttft_p50_ms'], '.2f')} "
        f"(target <= {TARGET_TTFT_RATIO}: {ratios['target_met']}); with batch: only requests "
        f"sent and finished while it ran ({with_.get('window_s', '-')} s of overlap)."
    )
    if with_.get("skipped"):
        console.print(f"with batch: skipped, {with_['skipped']}")
    console.print(
        f"batch {batch['status']}: {batch['lines']} lines, wall {_fmt(batch['wall_s'])} s, "
        f"run {_fmt(batch['run_s'])} s, {_fmt(batch['lines_s'], '.2f')} lines/s, "
        f"{_fmt(batch['completion_tok_s'])} completion tok/s ({batch['completion_tokens']} tokens)"
    )
    console.print(
        f"batch output: {batch['output_lines']} lines, failed {batch['failed_lines']}, "
        f"counts {batch['request_counts']}, problems {batch.get('problems')}"
    )
    errors = without["errors"] + with_.get("errors", [])
    console.print(f"interactive errors: {errors or 'none'}")
    before, after = report["machine_before"], report["machine_after"]
    console.print(
        f"machine: {before['cpus']} cpus {before['cpu']}, {before['platform']}, python "
        f"{before['python']}; loadavg before {before['loadavg_1_5_15']}, "
        f"after {after['loadavg_1_5_15']}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llama-server", type=Path, help="llama-server binary (default: build cache)")
    p.add_argument("--modelyard", help="command that runs modelyard (default: on PATH)")
    p.add_argument("--threads", type=int, help="MODELYARD_WORKER_THREADS (default: the gateway's)")
    p.add_argument("--slots", type=int, help="MODELYARD_WORKER_SLOTS (default: the gateway's)")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE setting for serve")
    p.add_argument("--lines", type=int, default=500, help="chat lines in the batch")
    p.add_argument("--interactive-s", type=float, default=30, help="seconds of each load")
    p.add_argument("--interactive-concurrency", type=int, default=1, help="interactive clients")
    p.add_argument("--poll-s", type=float, default=0.5, help="batches.retrieve interval")
    p.add_argument("--batch-timeout", type=float, default=1800, help="cancel the batch after")
    p.add_argument("--startup-timeout", type=float, default=600)
    p.add_argument("--work", type=Path, help="keep the gateway's home and log here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    run_report(parse_args(argv), bench, render, "modelyard-batch-bench-")


if __name__ == "__main__":
    main()
