"""The witness against a disk-level attacker: real witness processes, real files, real rows.

Each attack is done the way someone with write access to the database and $MODELYARD_HOME
would do it; verify must fail with a specific reason, and the honest path must verify.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from modelyard.audit import AuditEntry, AuditLog
from modelyard.audit.canonical import iso
from modelyard.audit.checkpoints import Checkpointer, read_checkpoints, record_bodies
from modelyard.audit.retention import purge_older_than
from modelyard.audit.verify import verify
from modelyard.audit.witness.core import Refused
from modelyard.audit.witness.statements import head_bytes
from modelyard.config import Settings
from modelyard.store.database import Database
from tests.audit.entries import request_entry
from tests.audit.witnessing import (
    WitnessProcess,
    copy_sqlite,
    execute,
    make_token,
    modelyard,
    rehash,
    restore_sqlite,
    witnessed,
)
from tests.governance.clirun import run_cli


def _fill(log: AuditLog, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        log.append(request_entry(n))


def _resign_home_copy(
    settings: Settings, key: Ed25519PrivateKey, heads: list[tuple[int, str]]
) -> None:
    """Write checkpoints.jsonl anew, signed with ``key`` (the attacker's)."""
    lines = []
    for seq, head_hash in heads:
        at = iso(datetime.now(UTC))
        sig = base64.b64encode(key.sign(head_bytes(seq, head_hash, at))).decode("ascii")
        lines.append(json.dumps({"seq": seq, "hash": head_hash, "at": at, "sig": sig}))
    (settings.audit_dir / "checkpoints.jsonl").write_text("\n".join(lines) + "\n")


def _head(db: Database) -> tuple[int, str]:
    with db.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT seq, hash FROM audit_head").one()
    return int(row[0]), str(row[1])


def test_honest_path_verifies_with_witness_evidence(
    witnessed_log: AuditLog, audit_db: Database, settings: Settings, witness: WitnessProcess
) -> None:
    _fill(witnessed_log, 12)
    witnessed_log.checkpoint()
    report = verify(audit_db, settings)
    assert report.ok, report.problem
    assert (report.evidence, report.witnessed_seq, report.records) == ("witness", 12, 12)
    assert [line["seq"] for line in witness.journal_lines()] == [5, 10, 12]
    assert [c.seq for c in read_checkpoints(settings)] == [5, 10, 12]  # the home copy
    assert not (settings.audit_dir / "signing.key").exists()  # no key in the home
    _fill(witnessed_log, 2, start=12)
    report = verify(audit_db, settings)
    assert report.ok and any("13..14 are newer" in note for note in report.notes)


def test_rewritten_chain_gets_no_signature(
    witnessed_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    """Attack: edit a record, recompute the chain, re-sign it with a key in the home."""
    _fill(witnessed_log, 7)  # the witness signed seq 5
    execute(audit_db, "UPDATE audit_records SET completion_tokens = 999 WHERE seq = 3")
    new_head = rehash(audit_db)
    attacker = Ed25519PrivateKey.generate()
    (settings.audit_dir / "signing.key").write_bytes(
        attacker.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    _resign_home_copy(settings, attacker, [(7, new_head)])
    with pytest.raises(Refused) as refused:
        witnessed_log.checkpoint()
    assert refused.value.code == "fork"
    report = verify(audit_db, settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "restored", 5)
    assert "rewritten" in (report.problem or "")


def test_swapped_witness_key_is_detected(
    witnessed_log: AuditLog,
    audit_db: Database,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Attack: stand up another witness (a new key pair) and point the gateway at it."""
    _fill(witnessed_log, 6)
    impostor = WitnessProcess(tmp_path / "impostor")
    impostor.init()
    impostor.start()
    try:
        settings.audit_witness = impostor.socket
        execute(audit_db, "DELETE FROM audit_records WHERE seq >= 4")
        execute(
            audit_db,
            "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_records WHERE seq = 3)",
        )
        log = AuditLog(audit_db, settings)
        log.checkpoint()  # the impostor happily signs the truncated chain
        log.close(checkpoint=False)
        report = verify(audit_db, settings)
        assert (report.ok, report.problem_kind) == (False, "key"), report.problem
        assert "not the pinned key" in (report.problem or "")
    finally:
        impostor.stop()


def test_swapped_local_key_pair_is_detected(sqlite_settings: Settings, tmp_path: Path) -> None:
    """Attack (local-key mode): replace signing.key/.pub and re-sign a rewritten log."""
    settings = sqlite_settings
    settings.audit_checkpoint_every = 5
    db = Database(settings.resolved_database_url)
    log = AuditLog(db, settings)
    _fill(log, 6)
    log.close()
    pinned = tmp_path / "pinned.pub"  # copied out of the home when it was set up
    pinned.write_bytes((settings.audit_dir / "signing.pub").read_bytes())
    settings.audit_pubkey = pinned
    assert verify(db, settings).evidence == "pinned-local"
    execute(db, "UPDATE audit_records SET prompt_tokens = 1 WHERE seq = 2")
    new_head = rehash(db)
    attacker = Ed25519PrivateKey.generate()
    for name, data in (
        (
            "signing.key",
            attacker.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
        (
            "signing.pub",
            attacker.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
    ):
        (settings.audit_dir / name).write_bytes(data)
    _resign_home_copy(settings, attacker, [(6, new_head)])
    unpinned = settings.model_copy(update={"audit_pubkey": None})
    fooled = verify(db, unpinned)
    assert fooled.ok and fooled.evidence == "none"  # what the issue found: no pin, no proof
    report = verify(db, settings)
    assert (report.ok, report.problem_kind) == (False, "key")
    db.close()


@pytest.mark.parametrize("how", ["delete", "empty"])
def test_deleted_checkpoint_file_does_not_hide_truncation(
    witnessed_log: AuditLog, audit_db: Database, settings: Settings, how: str
) -> None:
    """Attack: cut the tail of the log, then delete or empty the home's checkpoints file."""
    _fill(witnessed_log, 11)  # signed 5 and 10
    execute(audit_db, "DELETE FROM audit_records WHERE seq >= 9")
    execute(
        audit_db,
        "UPDATE audit_head SET seq = 8, hash = (SELECT hash FROM audit_records WHERE seq = 8)",
    )
    path = settings.audit_dir / "checkpoints.jsonl"
    if how == "delete":
        path.unlink()
    else:
        path.write_text("")
    report = verify(audit_db, settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "truncated", 10)
    with pytest.raises(Refused) as refused:  # nor will the witness sign the shorter log
        witnessed_log.checkpoint()
    assert refused.value.code == "behind"


def _old_records(db: Database, through: int, days: int) -> None:
    old = iso(datetime.now(UTC) - timedelta(days=days))
    execute(db, "UPDATE audit_records SET at = :at WHERE seq <= :seq", at=old, seq=through)


def test_witnessed_purge_verifies_and_forged_purge_fails(
    audit_db: Database, settings: Settings, witness: WitnessProcess
) -> None:
    witnessed(settings, witness)
    settings.audit_checkpoint_every = 1000
    log = AuditLog(audit_db, settings)
    _fill(log, 8)
    _old_records(audit_db, 5, days=40)  # an honest old log (before the witness saw it)
    rehash(audit_db)
    purge = purge_older_than(log, 30)
    assert purge is not None and purge.seq == 9
    report = verify(audit_db, settings)
    assert report.ok, report.problem
    assert report.evidence == "witness" and "records 1..5 were purged by retention" in report.notes
    assert [line.get("kind") for line in witness.journal_lines()] == [None, "purge"]
    log.close(checkpoint=False)


def test_forged_purge_record_is_rejected(
    witnessed_log: AuditLog, audit_db: Database, settings: Settings
) -> None:
    """Attack: delete records and append a purge record that accounts for them."""
    _fill(witnessed_log, 8)
    witnessed_log.checkpoint()
    with audit_db.engine.connect() as conn:
        through_hash = conn.exec_driver_sql("SELECT hash FROM audit_records WHERE seq = 6").scalar()
    execute(audit_db, "DELETE FROM audit_records WHERE seq <= 6")
    details = {"through_seq": 6, "through_hash": through_hash, "removed": 6}
    details |= {"cutoff": iso(datetime.now(UTC)), "retention_days": 30}
    details |= {"witness_at": iso(datetime.now(UTC)), "witness_sig": "AAAA"}
    with witnessed_log.lock, Session(witnessed_log.engine) as session, session.begin():
        witnessed_log.append_in(
            session, AuditEntry(kind="purge", actor="retention", details=details)
        )
    report = verify(audit_db, settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "purge", 9)
    assert "outside a witnessed purge" in (report.problem or "")


def test_witness_refuses_to_purge_young_records(
    witnessed_log: AuditLog, audit_db: Database
) -> None:
    """Attack: ask the witness itself (its socket) to sign a purge of recent records."""
    _fill(witnessed_log, 6)
    witnessed_log.checkpoint()
    anchors = witnessed_log.witness.anchors(3)
    assert (anchors["from_seq"], anchors["to_seq"]) == (0, 5)
    with pytest.raises(Refused) as refused:
        witnessed_log.witness.sign_purge(
            3, anchors["from_seq"], anchors["from_hash"], _bodies(witnessed_log, anchors)
        )
    assert refused.value.code == "too-young"
    _old_records(audit_db, 3, days=40)  # back-date them in the database…
    with pytest.raises(Refused) as refused:  # …and the chain no longer is the one it signed
        witnessed_log.witness.sign_purge(
            3, anchors["from_seq"], anchors["from_hash"], _bodies(witnessed_log, anchors)
        )
    assert refused.value.code == "fork"
    with pytest.raises(Refused) as refused:
        witnessed_log.witness.anchors(7)
    assert refused.value.code == "uncovered"


def _bodies(log: AuditLog, anchors: dict[str, int]) -> list[str]:
    with Session(log.engine) as session:
        return record_bodies(session, anchors["from_seq"] + 1, anchors["to_seq"])[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_time_bounded_checkpoint_catches_an_old_copy(
    sqlite_settings: Settings, witness: WitnessProcess, tmp_path: Path
) -> None:
    """Attack: after a kill -9, restore a database copy older than the last timed checkpoint."""
    settings = witnessed(sqlite_settings, witness)
    settings.audit_checkpoint_every = 1000  # never by count here: only the clock
    db = Database(settings.resolved_database_url)
    log = AuditLog(db, settings)
    clock = FakeClock()
    checkpointer = Checkpointer(log, interval_s=60, clock=clock)
    _fill(log, 3)
    assert not checkpointer.tick()
    clock.now += 59
    assert not checkpointer.tick()
    clock.now += 1
    assert checkpointer.tick()
    copy_sqlite(settings, tmp_path / "old.db")  # a backup holding seq 1..3
    _fill(log, 3, start=3)
    clock.now += 30
    assert not checkpointer.tick()
    clock.now += 30
    assert checkpointer.tick()  # seq 6 signed by time; then the process is killed
    assert [line["seq"] for line in witness.journal_lines()] == [3, 6]
    log.close(checkpoint=False)  # killed: no shutdown checkpoint
    db.close()
    restore_sqlite(settings, tmp_path / "old.db")
    db = Database(settings.resolved_database_url)
    report = verify(db, settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "truncated", 6)
    log = AuditLog(db, settings)  # the restored log grows past the witnessed head…
    _fill(log, 5, start=10)
    with pytest.raises(Refused):  # …and the witness will not sign it
        log.checkpoint()
    report = verify(db, settings)
    assert (report.ok, report.problem_kind, report.problem_seq) == (False, "restored", 6)
    log.close(checkpoint=False)
    db.close()


def test_verify_says_when_it_proves_nothing(tmp_path: Path, witness: WitnessProcess) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    log = AuditLog(db, settings)
    _fill(log, 2)
    log.close()
    local = json.loads(modelyard(home, "audit", "verify", "--json").stdout)
    assert (local["ok"], local["evidence"]) == (True, "none")
    assert "local key: not evidence against a disk-level attacker" in local["evidence_note"]
    human = modelyard(home, "audit", "verify")
    assert "evidence: none" in human.stderr and "local key" in human.stderr
    db.close()
    home2 = tmp_path / "home2"
    settings2 = Settings(home=home2, audit_witness=witness.socket)
    settings2.ensure_home()
    db2 = Database(settings2.resolved_database_url)
    log2 = AuditLog(db2, settings2)
    _fill(log2, 2)
    log2.close()
    env = {"MODELYARD_AUDIT_WITNESS": str(witness.socket)}
    unpinned = json.loads(modelyard(home2, "audit", "verify", "--json", env=env).stdout)
    assert unpinned["evidence"] == "none"
    assert "proves nothing against a disk-level attacker" in unpinned["evidence_note"]
    pinned = modelyard(home2, "audit", "verify", "--json", "--pubkey", str(witness.pubkey), env=env)
    assert json.loads(pinned.stdout)["evidence"] == "witness"
    status = json.loads(modelyard(home2, "audit", "witness", "status", "--json", env=env).stdout)
    assert status["last"]["seq"] == 2
    wrong = tmp_path / "wrong.pub"
    wrong.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    failed = modelyard(home2, "audit", "verify", "--pubkey", str(wrong), env=env, check=False)
    assert failed.returncode == 1 and "not the pinned key" in failed.stderr
    bad = modelyard(home2, "audit", "verify", "--pubkey", str(tmp_path / "none"), check=False)
    assert bad.returncode == 1 and "cannot read the pinned audit public key" in bad.stderr
    db2.close()


def test_witness_restart_keeps_its_record(
    witnessed_log: AuditLog, audit_db: Database, witness: WitnessProcess
) -> None:
    _fill(witnessed_log, 5)
    witness.stop()
    with witness.journal.open("ab") as handle:
        handle.write(b'{"seq": 9, "hash": "to')  # a torn write from a crash: never acknowledged
    witness.start()
    execute(audit_db, "UPDATE audit_records SET status = 500 WHERE seq = 2")
    rehash(audit_db)
    _fill(witnessed_log, 1, start=5)
    with pytest.raises(Refused) as refused:
        witnessed_log.checkpoint()
    assert refused.value.code == "fork"
    assert [line["seq"] for line in witness.journal_lines()] == [5]
    witness.stop()
    with witness.journal.open("ab") as handle:
        handle.write(b"not json\n")
    with pytest.raises(RuntimeError, match=r"journal .* is corrupt"):
        witness.start()


def test_witness_answers_bad_requests_and_keeps_serving(witness: WitnessProcess) -> None:
    for payload in (b"not json\n", b'{"op": "sign_head", "seq": "x"}\n', b'{"op": "nope"}\n'):
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(witness.socket))
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            reply = json.loads(conn.makefile("rb").read())
        assert (reply["ok"], reply["kind"]) == (False, "invalid")
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(witness.socket))
        conn.sendall(b'{"op": "info"}\n')
        conn.shutdown(socket.SHUT_WR)
        info = json.loads(conn.makefile("rb").read())["result"]
    assert info["last"] is None and info["public_key"] == witness.public_pem


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_witness_started_as_root_runs_as_another_user(witness: WitnessProcess) -> None:
    assert witness.proc is not None
    status = Path(f"/proc/{witness.proc.pid}/status").read_text()
    uid = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uid) == {str(pwd.getpwnam("nobody").pw_uid)}
    for name in ("signing.key", "journal.jsonl"):
        path = witness.state_dir / name
        assert path.stat().st_uid == pwd.getpwnam("nobody").pw_uid
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    second = WitnessProcess(witness.root)  # the same socket: refused while the first serves
    with pytest.raises(RuntimeError, match="another witness is serving"):
        second.start()


def test_witness_init_refusals(tmp_path: Path) -> None:
    home = tmp_path / "home"
    inside = run_cli(home, "audit", "witness", "init", "--dir", str(home / "w"), ok=False)
    assert inside.returncode == 1 and "outside MODELYARD_HOME" in inside.stderr
    state = tmp_path / "w"
    first = run_cli(home, "audit", "witness", "init", "--dir", str(state))
    assert first.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    again = run_cli(home, "audit", "witness", "init", "--dir", str(state), ok=False)
    assert again.returncode == 1 and "already holds a witness" in again.stderr
    hsm = run_cli(
        home,
        "audit",
        "witness",
        "init",
        "--dir",
        str(tmp_path / "x"),
        "--pkcs11-module",
        "/nonexistent.so",
        ok=False,
    )
    assert hsm.returncode == 1 and "--token-label and --pin-file" in hsm.stderr
    nodir = run_cli(home, "audit", "witness", "serve", ok=False)
    assert nodir.returncode == 1 and "no witness directory" in nodir.stderr


@pytest.fixture
def token_root() -> Iterator[Path]:
    """Outside pytest's 0700 temp tree, so that the witness's user can reach the token."""
    root = Path(tempfile.mkdtemp(prefix="modelyard-hsm-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root)


@pytest.mark.slow
def test_pkcs11_witness(
    audit_db: Database, settings: Settings, tmp_path: Path, token_root: Path
) -> None:
    token = make_token(token_root / "hsm")
    witness = WitnessProcess(tmp_path / "hsm-witness", token=token)
    witness.init()
    witness.start()
    try:
        assert not (witness.state_dir / "signing.key").exists()  # the key is on the token
        witnessed(settings, witness)
        settings.audit_checkpoint_every = 4
        log = AuditLog(audit_db, settings)
        _fill(log, 9)
        report = verify(audit_db, settings)
        assert report.ok and report.evidence == "witness" and report.witnessed_seq == 8
        execute(audit_db, "UPDATE audit_records SET latency_ms = 1 WHERE seq = 6")
        rehash(audit_db)
        with pytest.raises(Refused):
            log.checkpoint()
        report = verify(audit_db, settings)
        assert (report.ok, report.problem_kind, report.problem_seq) == (False, "restored", 8)
        log.close(checkpoint=False)
    finally:
        witness.stop()
