"""Erasure covers every record linked to a person, not only those whose ``user`` names
them; hash mode stores keyed digests. Real databases (SQLite and PostgreSQL), real files."""

from __future__ import annotations

import hashlib
import hmac
import json

import sqlalchemy as sa
from typer.testing import CliRunner

from modelyard.audit import AuditEntry, AuditLog
from modelyard.audit.erasure import erase_subject
from modelyard.audit.query import ERASED, Filter, iter_records, show_record
from modelyard.audit.text_digest import HMAC_MODE, match_record
from modelyard.audit.usage import usage_by
from modelyard.audit.verify import verify
from modelyard.cli.app import app
from modelyard.config import Settings
from modelyard.store.database import Database
from tests.audit.entries import request_entry

PERSON = "anna-schmidt"


def _raw(db: Database) -> str:
    """Every stored column of every record, as text (what a database dump would show)."""
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_records ORDER BY seq")).mappings().all()
    return json.dumps([dict(r) for r in rows], default=str)


def _person_everywhere(log: AuditLog) -> None:
    """Records naming the person in every way the gateway and the admin API do."""
    own = request_entry(1, subject=PERSON)  # the person's key, no `user`: subject = key
    own.actor = PERSON
    log.append(own)  # seq 1
    refused = AuditEntry(kind="request", actor=PERSON, route="chat", status=429, subject=PERSON)
    log.append(refused)  # seq 2: no text at all, still linked
    log.append(
        AuditEntry(
            kind="event", actor="admin", target=f"key:{PERSON}", details={"event": "key.create"}
        )
    )  # seq 3
    log.append(
        AuditEntry(
            kind="event",
            actor="ops",
            target="alias:chat",
            details={"event": "alias.set", "before": {"actor": PERSON}},
        )
    )  # seq 4
    for_someone = request_entry(2, subject="patient-7")  # her key, another subject's text
    for_someone.actor = PERSON
    log.append(for_someone)  # seq 5
    log.append(request_entry(3, subject="bob"))  # seq 6: not hers


def test_erasure_covers_every_record_naming_the_person(
    audit_db: Database, settings: Settings
) -> None:
    log = AuditLog(audit_db, settings)
    _person_everywhere(log)
    assert PERSON not in _raw(audit_db)  # never stored in clear, only sealed
    shown = list(iter_records(audit_db, Filter()))
    assert [r["actor"] for r in shown[:2]] == [PERSON, PERSON]
    assert shown[2]["target"] == f"key:{PERSON}"
    assert shown[3]["details"]["before"]["actor"] == PERSON
    assert [r["seq"] for r in iter_records(audit_db, Filter(actor=PERSON))] == [1, 2, 5]

    erasure = erase_subject(log, PERSON, actor="dpo")
    assert erasure.records == {"request": [1, 2, 5], "event": [3, 4]}
    assert erasure.in_clear == []
    after = {r["seq"]: r for r in iter_records(audit_db, Filter())}
    assert after[1]["actor"] == ERASED and after[1]["prompt"] == ERASED
    assert after[2]["actor"] == ERASED
    assert after[3]["target"] == f"key:{ERASED}"
    assert after[4]["details"]["before"]["actor"] == ERASED
    assert after[5]["actor"] == ERASED and after[5]["prompt"] == "prompt number 2"  # patient-7's
    assert after[6]["actor"] == "key-1" and after[6]["prompt"] == "prompt number 3"
    event = after[erasure.event_seq]
    assert event["details"]["per_kind"] == {"request": 3, "event": 2}
    assert PERSON not in json.dumps(event)
    assert verify(audit_db, settings).ok  # the chain is untouched


def test_usage_by_key_keeps_an_erased_keys_tokens(audit_db: Database, settings: Settings) -> None:
    log = AuditLog(audit_db, settings)
    _person_everywhere(log)
    before = {u.group: u.total_tokens for u in usage_by(audit_db, by="key")}
    assert before == {PERSON: 11 + 5 + 0 + 12 + 5, "key-1": 13 + 5}
    erase_subject(log, PERSON, actor="dpo")
    after = {u.group: u.total_tokens for u in usage_by(audit_db, by="key")}
    assert after == {ERASED: 33, "key-1": 18}  # the tokens stay; only the name is gone
    assert sum(after.values()) == sum(before.values())


def test_records_from_before_sealing_are_reported_in_clear(
    audit_db: Database, settings: Settings
) -> None:
    log = AuditLog(audit_db, settings)
    log.append(request_entry(1, subject=PERSON))
    with audit_db.engine.begin() as conn:  # a record as the previous version wrote it
        conn.execute(sa.text("UPDATE audit_records SET actor = :a"), {"a": PERSON})
    erasure = erase_subject(log, PERSON, actor="dpo")
    assert erasure.records == {"request": [1]} and erasure.in_clear == [1]


def test_hash_mode_stores_a_keyed_hmac_and_an_auditor_can_match(
    audit_db: Database, settings: Settings
) -> None:
    settings.audit_store_text = "hash"
    log = AuditLog(audit_db, settings)
    log.append(request_entry(4))
    stored = show_record(audit_db, 1)
    plain = hashlib.sha256(b"prompt number 4").hexdigest()
    secret = (settings.audit_dir / "text.secret").read_bytes()
    assert stored["text_mode"] == HMAC_MODE and stored["prompt_sha256"] != plain
    assert stored["prompt_sha256"] == hmac.new(secret, b"prompt number 4", "sha256").hexdigest()
    assert (settings.audit_dir / "text.secret").stat().st_mode & 0o777 == 0o600
    assert match_record(audit_db, settings, 1, "prompt number 4").prompt is True
    miss = match_record(audit_db, settings, 1, "prompt number 5")
    assert (miss.prompt, miss.response, miss.matched) == (False, False, False)
    assert match_record(audit_db, settings, 1, "answer number 4").response is True


def test_legacy_sha256_records_keep_their_label_and_still_match(
    audit_db: Database, settings: Settings
) -> None:
    log = AuditLog(audit_db, settings)
    log.append(AuditEntry(kind="request", actor="k", status=200))
    digest = hashlib.sha256(b"old prompt").hexdigest()
    with audit_db.engine.begin() as conn:  # as the previous version wrote hash mode
        conn.execute(
            sa.text("UPDATE audit_records SET text_mode = 'hash', prompt_sha256 = :d"),
            {"d": digest},
        )
    match = match_record(audit_db, settings, 1, "old prompt")
    assert (match.algorithm, match.prompt) == ("sha256", True)


def test_lone_surrogates_are_recorded_not_lost(audit_db: Database, settings: Settings) -> None:
    log = AuditLog(audit_db, settings)
    entry = request_entry(1)
    entry.prompt, entry.details = "bad \ud800 text", {"user": "x\udfff"}
    log.append(entry)
    (record,) = iter_records(audit_db, Filter())
    assert record["prompt"] == "bad \\ud800 text" and record["details"]["user"] == "x\\udfff"
    assert verify(audit_db, settings).ok


def test_cli_erase_lists_what_it_erased(sqlite_settings: Settings) -> None:
    db = Database(sqlite_settings.resolved_database_url)
    try:
        log = AuditLog(db, sqlite_settings)
        _person_everywhere(log)
        log.close(checkpoint=False)
    finally:
        db.close()
    env = {"MODELYARD_HOME": str(sqlite_settings.home), "MODELYARD_DATABASE_URL": ""}
    out = CliRunner().invoke(app, ["audit", "erase", PERSON, "--yes", "--json"], env=env)
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert listed["records"] == {"request": [1, 2, 5], "event": [3, 4]} and listed["count"] == 5
    again = CliRunner().invoke(app, ["audit", "erase", PERSON, "--yes"], env=env)
    assert again.exit_code != 0  # already erased: nothing linked any more
