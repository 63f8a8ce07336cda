"""Group commit: appends that wait for the log share one transaction with a constant number
of statements, one bad entry fails alone, and ``append_in`` joins the caller's transaction."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from modelyard.audit import AuditEntry, AuditLog
from modelyard.audit.log import Appended
from modelyard.audit.verify import verify
from modelyard.config import Settings
from modelyard.store.database import Database, make_engine
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


def _statements(log: AuditLog) -> list[str]:
    seen: list[str] = []

    @event.listens_for(log.engine, "before_cursor_execute")
    def _on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split()[0].upper())

    return seen


def test_a_group_costs_the_same_statements_whatever_its_size(audit_log: AuditLog) -> None:
    audit_log.sign_on_append = False  # no checkpoint reads in between
    statements = _statements(audit_log)
    sizes = []
    for size, subject in ((3, "alice"), (30, "bob")):
        statements.clear()
        results = _append_while_held(
            audit_log, [request_entry(n, subject=f"{subject}-{n % 4}") for n in range(size)]
        )
        assert all(isinstance(r, Appended) for r in results), results
        sizes.append(sorted(statements))
    # lock + allocate, keys looked up, new keys, records, head: one each, for 3 or 30
    assert sizes[0] == sizes[1]
    assert sizes[0].count("INSERT") == 2 and sizes[0].count("UPDATE") == 2


def test_one_bad_entry_fails_alone(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    commits = _commits(audit_log)
    entries = [request_entry(n) for n in range(6)]
    entries[3] = AuditEntry(kind="event", actor="tests", details={"unstorable": object()})
    results = _append_while_held(audit_log, entries)
    assert isinstance(results[3], TypeError), results[3]
    good = [r for i, r in enumerate(results) if i != 3]
    assert all(isinstance(r, Appended) for r in good), good
    assert sorted(r.seq for r in good if isinstance(r, Appended)) == [1, 2, 3, 4, 5]
    assert len(commits) == 1  # the others were appended around it, in the same transaction
    assert verify(audit_db, settings).ok


def test_an_entry_the_database_refuses_fails_alone(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    entries = [request_entry(n) for n in range(6)]
    entries[2].status = 2**70  # no INTEGER column holds it: the whole insert fails
    results = _append_while_held(audit_log, entries)
    assert isinstance(results[2], Exception) and not isinstance(results[2], Appended)
    good = [r for i, r in enumerate(results) if i != 2]
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

    monkeypatch.setattr("modelyard.audit.log.append_batch", refuse)
    results = _append_while_held(audit_log, [request_entry(n) for n in range(4)])
    assert all(isinstance(r, Unavailable) for r in results), results


def test_append_in_joins_the_callers_transaction(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    appended: list[Appended] = []
    with pytest.raises(LookupError), Session(audit_log.engine) as session, session.begin():
        appended += [audit_log.append_in(session, request_entry(n)) for n in range(2)]
        raise LookupError("the caller's own change failed")  # its records go with it
    assert [a.seq for a in appended] == [1, 2]
    assert audit_log.head().seq == 0
    with Session(audit_log.engine) as session, session.begin():
        session.execute(text("SELECT 1"))
        kept = [audit_log.append_in(session, request_entry(n)) for n in range(2, 4)]
    assert [a.seq for a in kept] == [1, 2] and audit_log.head() == kept[-1]
    with pytest.raises(TypeError), Session(audit_log.engine) as session, session.begin():
        audit_log.append_in(session, AuditEntry(details={"unstorable": object()}))
    report = verify(audit_db, settings)
    assert report.ok and report.records == 2


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_appends_that_arrive_while_another_process_holds_the_head_join_the_batch(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    audit_log.sign_on_append = False
    commits = _commits(audit_log)
    results: list[Appended | Exception] = [ValueError("not run")] * 6

    def run(index: int) -> None:
        try:
            results[index] = audit_log.append(request_entry(index))
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    elsewhere = make_engine(audit_db.url)
    other = elsewhere.connect()  # another process's append, holding the head-row lock
    try:
        other.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
        threads[0].start()  # leads: takes its batch (itself), then waits for the lock
        _wait_for(lambda: audit_log._leading and not audit_log._pending, "no leader waiting")
        for thread in threads[1:]:
            thread.start()
        _wait_for(lambda: len(audit_log._pending) == 5, "later appends never queued")
        other.commit()
    finally:
        other.close()
        elsewhere.dispose()
    for thread in threads:
        thread.join(timeout=60)
    assert [r.seq if isinstance(r, Appended) else r for r in results] == [1, 2, 3, 4, 5, 6]
    assert len(commits) == 1  # the five that came while the lock was awaited joined it
    assert verify(audit_db, settings).ok
