"""Retention purge and erasure leave a verifiable chain; exports and usage read the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from modelyard.audit import AuditLog
from modelyard.audit.erasure import erase_subject
from modelyard.audit.query import ERASED, Filter, export_lines, iter_records, show_record
from modelyard.audit.retention import purge_older_than
from modelyard.audit.usage import usage_by
from modelyard.audit.verify import verify
from modelyard.config import Settings
from modelyard.errors import InvalidInput, NotFound
from modelyard.store.database import Database
from tests.audit.entries import request_entry
from tests.audit.witnessing import rehash


def _age(db: Database, through_seq: int, days: int) -> None:
    old = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_records SET at = :at WHERE seq <= :seq"),
            {"at": old, "seq": through_seq},
        )


def test_purge_keeps_the_chain_verifiable(audit_db: Database, settings: Settings) -> None:
    settings.audit_checkpoint_every = 1000
    log = AuditLog(audit_db, settings)
    for n in range(8):
        log.append(request_entry(n))
    _age(audit_db, 5, days=40)
    rehash(audit_db)
    log.checkpoint()
    purge = purge_older_than(log, 30)
    assert purge is not None and purge.seq == 9
    assert purge_older_than(log, 30) is None
    log.append(request_entry(99))
    report = verify(audit_db, settings)
    assert report.ok, report.problem
    assert (report.first_seq, report.last_seq, report.records) == (6, 10, 5)
    with audit_db.engine.begin() as conn:  # removing survivors outside a purge is still caught
        conn.execute(sa.text("DELETE FROM audit_records WHERE seq = 6"))
    report = verify(audit_db, settings)
    assert (report.ok, report.problem_kind) == (False, "deleted")
    with pytest.raises(InvalidInput):
        purge_older_than(log, 0)
    log.close(checkpoint=False)


def test_erasure_shreds_text_and_chain_still_verifies(
    audit_db: Database, settings: Settings
) -> None:
    log = AuditLog(audit_db, settings)
    for n in range(3):
        log.append(request_entry(n, subject="carol"))
    log.append(request_entry(7, subject="dave"))
    records = list(iter_records(audit_db, Filter()))
    assert records[0]["prompt"] == "prompt number 0"
    erasure = erase_subject(log, "carol", actor="dpo")
    assert erasure.count == 3 and erasure.records == {"request": [1, 2, 3]}
    with pytest.raises(NotFound):
        erase_subject(log, "carol", actor="dpo")
    records = list(iter_records(audit_db, Filter(kind="request")))
    assert [r["prompt"] for r in records] == [ERASED, ERASED, ERASED, "prompt number 7"]
    assert verify(audit_db, settings).ok
    exported = "".join(export_lines(iter_records(audit_db, Filter()), "jsonl"))
    exported += "".join(export_lines(iter_records(audit_db, Filter()), "csv"))
    assert "prompt number 0" not in exported and "carol" not in exported
    assert "prompt number 7" in exported
    with audit_db.engine.connect() as conn:
        dump = repr(conn.execute(sa.text("SELECT * FROM audit_records")).all())
        dump += repr(conn.execute(sa.text("SELECT * FROM audit_subject_keys")).all())
    assert "carol" not in dump and "prompt number" not in dump
    log.close(checkpoint=False)


def test_show_export_filters_and_usage(audit_db: Database, settings: Settings) -> None:
    log = AuditLog(audit_db, settings)
    for n in range(4):
        log.append(request_entry(n, team="research" if n < 3 else "ops"))
    assert show_record(audit_db, 2)["prompt"] == "prompt number 1"
    with pytest.raises(NotFound):
        show_record(audit_db, 99)
    future = datetime.now(UTC) + timedelta(hours=1)
    assert list(iter_records(audit_db, Filter(since=future))) == []
    lines = list(export_lines(iter_records(audit_db, Filter(team="ops")), "jsonl"))
    assert len(lines) == 1 and json.loads(lines[0])["team"] == "ops"
    csv_lines = list(export_lines(iter_records(audit_db, Filter()), "csv"))
    assert csv_lines[0].startswith("seq,kind,at") and len(csv_lines) == 5
    with pytest.raises(InvalidInput):
        list(export_lines(iter_records(audit_db, Filter()), "xml"))
    by_team = {u.group: u for u in usage_by(audit_db, by="team")}
    assert by_team["research"].requests == 3
    assert by_team["research"].prompt_tokens == 10 + 11 + 12
    assert by_team["ops"].completion_tokens == 5
    by_key = usage_by(audit_db, since=datetime.now(UTC) - timedelta(hours=1), by="key")
    assert sum(u.requests for u in by_key) == 4
    assert usage_by(audit_db, since=future) == []
    with pytest.raises(InvalidInput):
        usage_by(audit_db, by="colour")  # type: ignore[arg-type]
    log.close(checkpoint=False)
