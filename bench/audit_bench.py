"""Audit log speed: appends per second (SQLite with synchronous=FULL, or PostgreSQL) and
verify speed, on a scratch home.

Usage::

    .venv/bin/python bench/audit_bench.py [--records 500] [--threads 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = args.database_url
    schema = None
    if url and url.startswith("postgresql"):  # a scratch schema, dropped afterwards
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{url}?options=-csearch_path%3D{schema}"
    try:
        run(args, url)
    finally:
        if schema is not None:
            with sa.create_engine(args.database_url).begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def run(args: argparse.Namespace, url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp), database_url=url)
        settings.ensure_home()
        db = Database(settings.resolved_database_url)
        log = AuditLog(db, settings)
        per_thread = args.records // args.threads

        def work(base: int) -> None:
            for n in range(per_thread):
                log.append(entry(base + n))

        started = time.perf_counter()
        threads = [
            threading.Thread(target=work, args=(i * per_thread,)) for i in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        total = per_thread * args.threads
        started = time.perf_counter()
        report = verify(db, settings)
        verify_s = time.perf_counter() - started
        assert report.ok, report.problem
        print(
            f"{db.safe_url.split(':')[0]}: {total} appends from {args.threads} threads in "
            f"{elapsed:.2f}s = {total / elapsed:.0f}/s ({1000 * elapsed / total:.1f} ms each); "
            f"verify {report.records} records in {verify_s:.2f}s"
        )
        log.close()
        db.close()


if __name__ == "__main__":
    main()
