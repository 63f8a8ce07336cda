"""Group commit: appends that wait for the log share one transaction, and one bad entry
fails alone."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import event

from modelyard.audit import AuditEntry, AuditLog
from modelyard.audit.log import Appended
from modelyard.audit.verify import verify
from modelyard.config import Settings
from modelyard.store.database import Database
from tests.audit.entries import request_entry

WAITERS = 12


def _commits(log: AuditLog) -> list[int]:
    counted: list[int] = []

    @event.listens_for(log.engine, "commit")
    def _on_commit(conn: Any) -> None:
        counted.append(1)

    return counted


def _append_while_held(log: AuditLog, entries: list[AuditEntry]) -> list[Appended | Exception]:
    """Start one thread per entry while the log's lock is held, wait until every entry is
    queued, then let them go: the first to get the lock commits the others' entries too."""
    results: list[Appended | Exception] = [ValueError("not run")] * len(entries)

    def run(index: int) -> None:
        try:
            results[index] = log.append(entries[index])
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(entries))]
    with log.lock:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(log._pending) < len(entries):  # all queued behind the held lock
            assert time.monotonic() < deadline, "appends never queued"
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_waiting_appends_share_one_commit_and_the_chain_verifies(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    commits = _commits(audit_log)
    results = _append_while_held(audit_log, [request_entry(n) for n in range(WAITERS)])
    assert all(isinstance(r, Appended) for r in results), results
    seqs = sorted(r.seq for r in results if isinstance(r, Appended))
    assert seqs == list(range(1, WAITERS + 1))
    assert len(commits) == 1  # twelve appends, one transaction
    assert verify(audit_db, settings).ok


def test_one_bad_entry_fails_alone(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    entries = [request_entry(n) for n in range(6)]
    entries[3] = AuditEntry(kind="event", actor="tests", details={"unstorable": object()})
    results = _append_while_held(audit_log, entries)
    assert isinstance(results[3], TypeError), results[3]
    good = [r for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, Appended) for r in good), good
    assert sorted(r.seq for r in good if isinstance(r, Appended)) == [1, 2, 3, 4, 5]
    assert verify(audit_db, settings).ok


def test_an_unwritable_log_fails_every_waiting_append_with_503(
    audit_log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from modelyard.errors import Unavailable

    def refuse(*args: object, **kwargs: object) -> Appended:
        raise OperationalError("INSERT", {}, Exception("disk full"))

    monkeypatch.setattr(audit_log, "append_in", refuse)
    results = _append_while_held(audit_log, [request_entry(n) for n in range(4)])
    assert all(isinstance(r, Unavailable) for r in results), results
