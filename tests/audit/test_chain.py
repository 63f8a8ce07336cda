"""The hash chain: appends, verify, and detection of every kind of tampering."""

from __future__ import annotations

import shutil
import stat
import threading

import pytest
import sqlalchemy as sa

from modelyard.audit import AuditLog, record_event
from modelyard.audit.checkpoints import read_checkpoints
from modelyard.audit.query import Filter, iter_records
from modelyard.audit.verify import verify
from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.store.database import Database
from tests.audit.entries import request_entry


def _fill(log: AuditLog, count: int) -> None:
    for n in range(count):
        log.append(request_entry(n))


def _exec(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_appends_chain_and_verify(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    _fill(audit_log, 12)
    report = verify(audit_db, settings)
    assert report.ok, report.problem
    assert (report.records, report.first_seq, report.last_seq) == (12, 1, 12)
    assert [c.seq for c in read_checkpoints(settings)] == [5, 10]
    key_file = settings.audit_dir / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key_file.read_bytes()
    with audit_db.engine.connect() as conn:
        text = " ".join(
            str(v) for row in conn.execute(sa.text("SELECT * FROM audit_records")) for v in row
        )
    assert "prompt number" not in text  # stored encrypted


@pytest.mark.parametrize(
    ("tamper", "kind", "seq"),
    [
        ("UPDATE audit_records SET completion_tokens = 999 WHERE seq = 4", "edited", 4),
        ("DELETE FROM audit_records WHERE seq = 4", "deleted", 4),
        ("DELETE FROM audit_records WHERE seq = 1", "deleted", 1),
    ],
)
def test_detects_edit_and_delete(
    audit_log: AuditLog, audit_db: Database, settings: Settings, tamper: str, kind: str, seq: int
) -> None:
    _fill(audit_log, 7)
    assert verify(audit_db, settings).ok
    _exec(audit_db, tamper)
    report = verify(audit_db, settings)
    assert not report.ok
    assert (report.problem_kind, report.problem_seq) == (kind, seq), report.problem


def test_detects_reorder(audit_log: AuditLog, audit_db: Database, settings: Settings) -> None:
    _fill(audit_log, 7)
    _exec(audit_db, "UPDATE audit_records SET seq = -3 WHERE seq = 3")
    _exec(audit_db, "UPDATE audit_records SET seq = 3 WHERE seq = 4")
    _exec(audit_db, "UPDATE audit_records SET seq = 4 WHERE seq = -3")
    report = verify(audit_db, settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "reordered", 3)


def test_detects_insert(audit_log: AuditLog, audit_db: Database, settings: Settings) -> None:
    """A forged record with a correct hash, linked to its predecessor, shifted in at seq 4."""
    _fill(audit_log, 7)
    for seq in range(7, 3, -1):
        _exec(
            audit_db, "UPDATE audit_records SET seq = :new WHERE seq = :old", new=seq + 1, old=seq
        )
    from modelyard.audit.canonical import HASHED_FIELDS, record_hash

    with audit_db.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM audit_records WHERE seq = 3")).mappings().one()
    forged = dict(row)
    forged["seq"], forged["prev_hash"], forged["prompt_tokens"] = 4, row["hash"], 1
    forged["details"] = {"max_tokens": 16, "temperature": 0.0}
    forged["hash"] = record_hash({k: forged[k] for k in HASHED_FIELDS}, row["hash"])
    with audit_db.engine.begin() as conn:
        from modelyard.store.audit_tables import AuditRecordRow

        conn.execute(sa.insert(AuditRecordRow.__table__), [forged])
    report = verify(audit_db, settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "inserted", 4)


def test_detects_truncation_of_the_tail(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    _fill(audit_log, 11)  # checkpoint at 5 and 10
    _exec(audit_db, "DELETE FROM audit_records WHERE seq >= 9")
    _exec(
        audit_db,
        "UPDATE audit_head SET seq = 8, hash = (SELECT hash FROM audit_records WHERE seq = 8)",
    )
    report = verify(audit_db, settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "truncated", 10)


def test_detects_restore_of_an_old_copy(tmp_path: object, sqlite_settings: Settings) -> None:
    sqlite_settings.audit_checkpoint_every = 5
    db_file = sqlite_settings.home / "modelyard.db"
    db = Database(sqlite_settings.resolved_database_url)
    log = AuditLog(db, sqlite_settings)
    _fill(log, 6)
    log.close(checkpoint=True)  # shutdown checkpoint at 6
    db.close()
    old = sqlite_settings.home / "old.db"
    shutil.copy(db_file, old)
    db = Database(sqlite_settings.resolved_database_url)
    log = AuditLog(db, sqlite_settings)
    _fill(log, 6)  # checkpoints at 10 and 12 (shutdown)
    log.close()
    assert verify(db, sqlite_settings).ok
    db.close()
    for suffix in ("-wal", "-shm"):
        (sqlite_settings.home / f"modelyard.db{suffix}").unlink(missing_ok=True)
    shutil.copy(old, db_file)
    db = Database(sqlite_settings.resolved_database_url)
    report = verify(db, sqlite_settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "truncated", 10)
    log = AuditLog(db, sqlite_settings)  # the restored log grows again past the checkpoints
    _fill(log, 8)
    log.close(checkpoint=False)
    report = verify(db, sqlite_settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "restored", 10)
    db.close()


def test_forged_checkpoint_is_rejected(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    _fill(audit_log, 5)
    path = settings.audit_dir / "checkpoints.jsonl"
    path.write_text(path.read_text().replace('"seq": 5', '"seq": 4'))
    report = verify(audit_db, settings)
    assert (report.ok, report.problem_kind) == (False, "checkpoint")


def test_concurrent_appends_keep_one_chain(
    audit_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    other = AuditLog(audit_db, settings)  # a second writer, as a second process would be
    errors: list[ModelyardError] = []

    def work(log: AuditLog, base: int) -> None:
        try:
            for n in range(10):
                log.append(request_entry(base + n))
        except ModelyardError as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(log, i * 100))
        for i, log in enumerate([audit_log, other, audit_log, other])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close(checkpoint=False)
    assert errors == []
    report = verify(audit_db, settings)
    assert report.ok, report.problem
    assert report.records == 40


def test_record_event(audit_db: Database, settings: Settings) -> None:
    appended = record_event(
        audit_db, settings, "lifecycle.promote", "bob", "gemma3-270m@2", {"to": "production"}
    )
    assert appended.seq == 1
    with audit_db.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT kind, actor, target FROM audit_records")).one()
    assert (row.kind, row.target) == ("event", "gemma3-270m@2")
    assert row.actor.startswith("~") and "bob" not in row.actor  # a sealed pseudonym
    (shown,) = iter_records(audit_db, Filter())
    assert shown["actor"] == "bob"
    assert verify(audit_db, settings).ok


def test_sqlite_audit_connection_is_fully_synchronous(sqlite_settings: Settings) -> None:
    db = Database(sqlite_settings.resolved_database_url)
    log = AuditLog(db, sqlite_settings)
    try:
        with log.engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL
        with db.engine.connect() as conn:  # the rest of modelyard keeps its own setting
            assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    finally:
        log.close(checkpoint=False)
        db.close()
