"""Audit log speed: appends per second (SQLite with synchronous=FULL, or PostgreSQL) from one
or several OS processes, each with threads, and verify speed, on a scratch home.

Usage::

    .venv/bin/python bench/audit_bench.py [--records 500] [--threads 4] [--processes 1]
        [--database-url URL] [--kill-one] [--json]

``--processes N`` starts N appending processes on one database (and one home, as gateway
processes share theirs), each with ``--threads`` threads; ``--records`` is the total.
``--kill-one`` is the durability check: every process writes the sequence number of each
append that returned to a file (and fsyncs it) before it appends again; one process is
killed with SIGKILL once a quarter of its appends have returned; afterwards every number
in those files must be in the log, and ``audit verify`` must pass. Exit status 1 when
verify fails or a returned append is missing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from modelyard.audit import AuditEntry, AuditLog
from modelyard.audit.verify import verify
from modelyard.config import Settings
from modelyard.store.database import Database


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        actor="bench",
        team="bench",
        route="chat",
        target="gemma3-270m@1",
        status=200,
        prompt_tokens=50,
        completion_tokens=100,
        subject=f"user-{n % 20}",
        text_mode="full",
        prompt="Summarise the following paragraph in one sentence. " * 8,
        response="The paragraph says that the quarterly numbers were on target. " * 6,
    )


@dataclass(frozen=True)
class Job:
    """What one appending process does."""

    home: str
    url: str
    base: int
    threads: int
    per_thread: int
    seq_file: str | None


def appender(job: Job, ready: Any, start: Event) -> None:
    """One appending process: open the log, say so, wait for the start, append, report."""
    settings = Settings(home=Path(job.home), database_url=job.url)
    db = Database(job.url)
    log = AuditLog(db, settings)
    commits: list[int] = []
    sa.event.listen(log.engine, "commit", lambda conn: commits.append(1))
    fd = os.open(job.seq_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if job.seq_file else None
    errors: list[str] = []

    def work(first: int) -> None:
        for n in range(first, first + job.per_thread):
            try:
                appended = log.append(entry(n))
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(repr(exc))
                continue
            if fd is not None:  # returned, so durable: record it before the next append
                os.write(fd, f"{appended.seq}\n".encode())
                os.fsync(fd)

    threads = [
        threading.Thread(target=work, args=(job.base + i * job.per_thread,))
        for i in range(job.threads)
    ]
    ready.put(("ready", os.getpid()))
    start.wait()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ready.put(
        ("done", os.getpid(), job.threads * job.per_thread - len(errors), len(commits), errors[:3])
    )
    log.close()
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=500, help="appends in all")
    parser.add_argument("--threads", type=int, default=4, help="threads per process")
    parser.add_argument("--processes", type=int, default=1, help="appending OS processes")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--kill-one", action="store_true", help="the durability check")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    url = args.database_url
    schema = None
    if url and url.startswith("postgresql"):  # a scratch schema, dropped afterwards
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{url}?options=-csearch_path%3D{schema}"
    try:
        result = run(args, url)
    finally:
        if schema is not None:
            with sa.create_engine(args.database_url).begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    print(json.dumps(result) if args.json else summary(result))
    raise SystemExit(0 if result["ok"] else 1)


def run(args: argparse.Namespace, url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp), database_url=url)
        settings.ensure_home()
        db = Database(settings.resolved_database_url)
        AuditLog(db, settings).close(checkpoint=False)  # the home's audit secrets, made once
        result = _append_all(args, settings.resolved_database_url, Path(tmp))
        started = time.perf_counter()
        report = verify(db, settings)
        result.update(
            store=db.safe_url.split(":")[0],
            verify_ok=report.ok,
            verify_problem=report.problem,
            verify_records=report.records,
            verify_s=round(time.perf_counter() - started, 3),
        )
        if args.kill_one:
            result.update(_durability(db, Path(tmp)))
        result["ok"] = report.ok and not result.get("missing")
        db.close()
        return result


def _append_all(args: argparse.Namespace, url: str, home: Path) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    ready, start = context.Queue(), context.Event()
    per_process = args.records // args.processes
    per_thread = per_process // args.threads
    processes = []
    for index in range(args.processes):
        seq_file = str(home / f"returned-{index}.txt") if args.kill_one else None
        job = Job(str(home), url, index * per_process, args.threads, per_thread, seq_file)
        process = context.Process(target=appender, args=(job, ready, start))
        process.start()
        processes.append(process)
    for _ in processes:
        assert ready.get(timeout=300)[0] == "ready"
    started = time.perf_counter()
    start.set()
    killed = (
        _kill_one(processes[0], home / "returned-0.txt", per_process) if args.kill_one else None
    )
    done = [ready.get(timeout=600) for _ in processes[1 if killed else 0 :]]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join(timeout=60)
    appended = sum(d[2] for d in done)
    commits = sum(d[3] for d in done)
    return {
        "processes": args.processes,
        "threads": args.threads,
        "appends": appended,
        "seconds": round(elapsed, 3),
        "per_second": round(appended / elapsed),
        "appends_per_commit": round(appended / commits, 1) if commits else None,
        "errors": [e for d in done for e in d[4]],
        "killed_pid": killed,
    }


def _kill_one(process: Any, seq_file: Path, total: int) -> int:
    """SIGKILL ``process`` once a quarter of its appends have returned."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if seq_file.exists() and seq_file.read_bytes().count(b"\n") >= total // 4:
            break
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    return int(process.pid)


def _durability(db: Database, home: Path) -> dict[str, Any]:
    """Every sequence number a process saw returned is in the log."""
    returned: set[int] = set()
    by_killed = 0
    for path in sorted(home.glob("returned-*.txt")):
        numbers = {int(line) for line in path.read_text().split()}
        returned |= numbers
        if path.name == "returned-0.txt":
            by_killed = len(numbers)
    with db.engine.connect() as conn:
        stored = {int(s) for s in conn.execute(sa.text("SELECT seq FROM audit_records")).scalars()}
    return {
        "returned": len(returned),
        "returned_by_killed": by_killed,
        "stored": len(stored),
        "missing": sorted(returned - stored)[:20],
    }


def summary(result: dict[str, Any]) -> str:
    text = (
        f"{result['store']}: {result['appends']} appends from {result['processes']} process(es) "
        f"x {result['threads']} threads in {result['seconds']:.2f}s = {result['per_second']}/s "
        f"({result['appends_per_commit']} per commit); verify {result['verify_records']} "
        f"records in {result['verify_s']:.2f}s: {'ok' if result['verify_ok'] else 'FAILED'}"
    )
    if result["killed_pid"] is not None:
        text += (
            f"\nkill -9 of process {result['killed_pid']} after {result['returned_by_killed']} "
            f"returned appends; {result['returned']} returned in all, {result['stored']} in the "
            f"log, missing: {result['missing'] or 'none'}"
        )
    if result["errors"]:
        text += f"\nerrors: {result['errors']}"
    return text


if __name__ == "__main__":
    main()
