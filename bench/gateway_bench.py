"""Gateway throughput: audited chat requests per second through N gateway processes
(``modelyard serve --workers N``) on one PostgreSQL and one Redis, in front of a fast stub
engine (bench/stub_upstream.py), so that the gateway and its audit log are what is measured.

Every request is a real one: key check, governance, the remote-engine client, two audit
records (accepted, completed). Afterwards ``modelyard audit verify`` must pass and the log
must hold a completion record for every answered request (by its ``X-Request-Id``), also
with ``--kill-one``, which SIGKILLs one gateway process halfway through each multi-process
level.

Usage::

    .venv/bin/python bench/gateway_bench.py [--processes 1,2,4] [--concurrency 32]
        [--duration 15] [--clients 2] [--database-url postgresql+psycopg://…] [--json]

``--json`` prints ``modelyard bench``-shaped levels (one per process count, with
``processes``), which ``modelyard capacity --gateway-bench`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
MODELYARD = [sys.executable, "-m", "modelyard"]
URL_LINE = re.compile(r"(?:modelyard gateway on|listening on) (http://127\.0\.0\.1:\d+)")
POLICY = """[policy]
licences = ["apache-2.0"]

[policy.stages.approved]
licence = true

[policy.stages.production]
licence = true
"""


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*MODELYARD, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"modelyard {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """A child that prints its URL; yields the URL and its pid, then stops it (SIGTERM, then
    SIGKILL)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline:
            text = log.read_text()
            match = URL_LINE.search(text)
            if match:
                url = match.group(1)
                break
            if proc.poll() is not None:
                raise SystemExit(f"{args[:4]} exited:\n{text[-2000:]}")
            time.sleep(0.1)
        if url is None:
            raise SystemExit(f"{args[:4]} printed no URL:\n{log.read_text()[-2000:]}")
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def stub(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    with process([sys.executable, str(ROOT / "bench/stub_upstream.py")], env, log) as found:
        yield found


def wait_accepting(url: str, processes: int) -> None:
    """``serve`` prints its URL once its socket is bound; its gateway processes start after.
    Wait until /healthz has answered 200 twenty times in a row per process."""
    deadline = time.monotonic() + 180
    streak = 0
    while streak < 20 * processes:
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not become healthy")
        try:
            ok = httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        streak = streak + 1 if ok else 0
        if not ok:
            time.sleep(0.2)


def gateway_processes(serve_pid: int) -> list[int]:
    """The gateway processes ``serve --workers N`` runs: its spawned children (not the
    multiprocessing resource tracker, its other child)."""
    found = subprocess.run(
        ["pgrep", "-P", str(serve_pid), "-f", "spawn_main"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name: state is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def named_pids(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


Components = dict[str, Callable[[], list[int]]]
"""Name → its processes now (PostgreSQL starts a backend per new connection)."""


def fixed(pids: list[int]) -> Callable[[], list[int]]:
    return lambda: pids


def cpu_snapshot(components: Components) -> dict[str, dict[int, float]]:
    return {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in components.items()}


def cpu_per_request(
    before: dict[str, dict[int, float]],
    after: dict[str, dict[int, float]],
    completed: int,
) -> dict[str, float]:
    """CPU milliseconds each component spent per answered request over the window.

    PostgreSQL and Redis are counted machine-wide (every ``postgres`` and ``redis-server``
    process), so other work on the same servers would count too; the bench is the only load.
    """
    out: dict[str, float] = {}
    for name, pids in after.items():
        spent = sum(seconds - before[name].get(pid, 0.0) for pid, seconds in pids.items())
        out[name] = round(1000 * spent / max(completed, 1), 3)
    return out


Result = tuple[bool, float, str | None]
"""One request: answered (200), seconds, the gateway's X-Request-Id when answered."""


async def _client(url: str, key: str, concurrency: int, until: float) -> list[Result]:
    body = {
        "model": "stub",
        "messages": [{"role": "user", "content": "Summarise the quarter in one line."}],
        "max_tokens": 16,
    }
    headers = {"Authorization": f"Bearer {key}"}
    results: list[Result] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:

        async def loop() -> None:
            while time.monotonic() < until:
                started = time.monotonic()
                request_id = None
                try:
                    response = await c.post("/v1/chat/completions", json=body)
                    ok = response.status_code == 200
                    request_id = response.headers.get("X-Request-Id") if ok else None
                except httpx.HTTPError:
                    ok = False
                results.append((ok, time.monotonic() - started, request_id))
                if not ok:  # a dead connection fails at once: do not spin on it
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return results


def _client_process(args: tuple[str, str, int, float]) -> tuple[list[Result], float]:
    """The results, and the CPU seconds this load generator spent producing them."""
    started = time.process_time()
    results = asyncio.run(_client(*args))
    return results, time.process_time() - started


def load(
    url: str,
    key: str,
    concurrency: int,
    clients: int,
    duration: float,
    victim: int | None = None,
    components: Components | None = None,
) -> dict[str, Any]:
    """Closed-loop load for ``duration`` seconds; with ``victim``, that gateway process is
    killed with SIGKILL halfway through. With ``components`` (name → pids), the CPU each
    spent per answered request is reported, with the load generators' own as ``load``."""
    per_client = max(1, concurrency // clients)
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        pool.map(time.sleep, [0.0] * clients)  # the workers are up before the window opens
        before = cpu_snapshot(components or {})
        started = time.monotonic()
        until = started + duration
        pending = pool.map_async(_client_process, [(url, key, per_client, until)] * clients)
        if victim is not None:
            time.sleep(duration / 2)
            os.kill(victim, signal.SIGKILL)
        parts = pending.get()
        elapsed = time.monotonic() - started
        after = cpu_snapshot(components or {})
    results = [r for part, _ in parts for r in part]
    done = [seconds for ok, seconds, _ in results if ok]
    answered_ids = [rid for ok, _, rid in results if ok and rid]
    cpu = cpu_per_request(before, after, len(done)) if components else {}
    if components:
        cpu["load"] = round(1000 * sum(spent for _, spent in parts) / max(len(done), 1), 3)
    return {
        "answered_ids": answered_ids,
        "concurrency": per_client * clients,
        "sent": len(results),
        "completed": len(done),
        "errors": len(results) - len(done),
        "duration_s": elapsed,
        "requests_per_s": len(done) / elapsed,
        "latency_s": {f"p{q}": percentile(done, q) for q in (50, 90, 99)},
        "cpu_ms_per_request": cpu,
        "requests_per_gateway_cpu_s": (
            round(1000 / cpu["gateway"], 1) if cpu.get("gateway") else None
        ),
    }


def prepare(env: dict[str, str], stub_url: str) -> str:
    """Register the stub as endpoint ``stub`` in production; a key for the load."""
    cli(env, "endpoints", "allow", "127.0.0.1")
    (Path(env["MODELYARD_HOME"]) / "modelyard.toml").write_text(POLICY)
    cli(
        env,
        "models",
        "add-endpoint",
        "stub",
        "--url",
        stub_url,
        "--served-model",
        "stub-model",
        "--licence",
        "apache-2.0",
    )
    for stage in ("approved", "production"):
        cli(env, "models", "promote", "stub@1", "--to", stage, "--reason", "gateway bench")
    created = json.loads(cli(env, "keys", "create", "bench", "--json"))
    return str(created["key"])


def audit_check(env: dict[str, str], answered_ids: list[str], db_url: str) -> dict[str, Any]:
    """``audit verify``, and a completion record (status 200) for every answered request."""
    from modelyard.audit.query import Filter, iter_records
    from modelyard.store.database import Database

    started = time.monotonic()
    verify = subprocess.run(
        [*MODELYARD, "audit", "verify"], env=env, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    db = Database(db_url)
    try:
        records = list(iter_records(db, Filter()))
    finally:
        db.close()
    completed = {
        r["details"].get("request_id")
        for r in records
        if r["kind"] == "request" and r["status"] == 200
    }
    missing = [rid for rid in answered_ids if rid not in completed]
    return {
        "verify_ok": verify.returncode == 0,
        "verify_s": seconds,
        "verify_output": (verify.stdout + verify.stderr).strip().splitlines()[:1],
        "records": len(records),
        "answered": len(answered_ids),
        "answered_without_record": len(missing),
    }


def run(args: argparse.Namespace, db_url: str, schema: str | None, tmp: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "MODELYARD_HOME": str(tmp / "home"),
        "MODELYARD_DATABASE_URL": db_url,
        "MODELYARD_REDIS_URL": args.redis_url,
        "COLUMNS": "200",
    }
    levels = []
    answered: list[str] = []
    with stub(env, tmp / "stub.log") as (stub_url, stub_pid):
        key = prepare(env, stub_url)
        for count in args.processes:
            serve = [*MODELYARD, "serve", "--port", "0", "--workers", str(count)]
            with process(serve, env, tmp / f"serve-{count}.log") as (url, pid):
                wait_accepting(url, count)
                warm = load(url, key, min(4, args.concurrency), 1, 2.0)  # not measured
                answered += warm.pop("answered_ids")
                victim = None
                gateways = gateway_processes(pid) or [pid]  # one process: serve itself
                if args.kill_one and count > 1:
                    victim = gateways[0]
                components: Components = {
                    "gateway": fixed(gateways),
                    "stub": fixed([stub_pid]),
                    "postgres": lambda: named_pids("postgres"),
                    "redis": lambda: named_pids("redis-server"),
                }
                level = load(
                    url, key, args.concurrency, args.clients, args.duration, victim, components
                )
                answered += level.pop("answered_ids")
                level["processes"] = count
                level["killed_pid"] = victim
                levels.append(level)
                cpu = ", ".join(f"{k} {v:.2f}" for k, v in level["cpu_ms_per_request"].items())
                print(
                    f"{count} process(es): {level['requests_per_s']:.0f} req/s, "
                    f"p50 {level['latency_s']['p50'] * 1000:.0f} ms, errors {level['errors']}"
                    + (f", killed {victim}" if victim else "")
                    + f"; CPU ms per request: {cpu}",
                    file=sys.stderr,
                )
        audit = audit_check(env, answered, db_url)
    return {"target": "modelyard serve + stub upstream", "levels": levels, "audit": audit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=2, help="Load-generating processes.")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--kill-one", action="store_true", help="SIGKILL one gateway process mid-load (N > 1)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.processes = [int(p) for p in args.processes.split(",")]
    schema = None
    url = args.database_url
    if url.startswith("postgresql"):  # a scratch schema, dropped afterwards
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{url}?options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args, url, schema, Path(tmp))
    finally:
        if schema is not None:
            with sa.create_engine(args.database_url).begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(json.dumps(result["audit"], indent=2))
    audit = result["audit"]
    if not audit["verify_ok"] or audit["answered_without_record"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
