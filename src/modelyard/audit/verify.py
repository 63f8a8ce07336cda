"""``audit verify``: re-walk the chain, check the signed checkpoints, name the first problem.

Detected:

* **edited** — a record's stored hash differs from the hash of its columns;
* **deleted** — a gap in sequence numbers, or a record whose predecessor is missing;
* **inserted** — a record whose successor still links to the record before it;
* **reordered** — a record that links to a record other than its predecessor;
* **truncated / restored** — a signed checkpoint names a sequence number the log no longer
  has, or a hash that the record at that number no longer has (an older copy of the database);
* **purge** — the first surviving record must continue from the hash the newest purge record
  carries, and that record must carry the witness's signature over the purged range;
* **key** — the witness (or the key in the home) is not the key pinned outside the home;
* **checkpoint** — a signed head whose signature does not verify.

What the result is worth depends on where the signatures come from (``evidence``):

* ``witness`` — the witness's own journal, checked against a public key pinned outside the
  home (``MODELYARD_AUDIT_PUBKEY`` / ``--pubkey``): evidence against someone who can write the
  database and ``$MODELYARD_HOME`` (they cannot make the witness sign a rewritten chain);
* ``pinned-local`` — the home's checkpoints file, checked against a pinned key: a swapped key
  or forged line is caught, a deleted file is not;
* ``none`` — no pinned key: the signatures are checked against a key read from the home, which
  whoever can write the home can replace. Nothing is proven against that attacker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.audit.canonical import GENESIS_HASH, HASHED_FIELDS, record_hash
from modelyard.audit.checkpoints import read_home_copy
from modelyard.audit.connection import audit_engine
from modelyard.audit.secrets import verify_key
from modelyard.audit.witness.client import Witness, open_witness
from modelyard.audit.witness.statements import (
    HeadStatement,
    fingerprint,
    load_public_file,
    load_public_pem,
    purge_bytes,
    signature_valid,
)
from modelyard.config import Settings
from modelyard.store.audit_tables import AuditHeadRow, AuditRecordRow
from modelyard.store.database import Database


@dataclass
class VerifyReport:
    ok: bool = True
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    problem: str | None = None
    problem_kind: str | None = None
    problem_seq: int | None = None
    notes: list[str] = field(default_factory=list)
    evidence: str = "none"
    evidence_note: str = ""
    witnessed_seq: int | None = None
    pinned_key: str | None = None

    def fail(self, kind: str, seq: int | None, message: str) -> None:
        """Keep the problem at the lowest sequence number (the first one in the chain)."""
        earlier = seq is not None and self.problem_seq is not None and seq < self.problem_seq
        if self.ok or earlier:
            self.ok, self.problem_kind, self.problem_seq, self.problem = False, kind, seq, message

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoints": self.checkpoints,
            "problem": self.problem,
            "problem_kind": self.problem_kind,
            "problem_seq": self.problem_seq,
            "notes": self.notes,
            "evidence": self.evidence,
            "evidence_note": self.evidence_note,
            "witnessed_seq": self.witnessed_seq,
            "pinned_key": self.pinned_key,
        }


@dataclass
class _Walk:
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> stored hash
    by_hash: dict[str, int] = field(default_factory=dict)
    first_prev: str | None = None
    purge_through: tuple[int, str] | None = None
    purge_record: tuple[int, dict[str, Any]] | None = None


def verify(
    db: Database,
    settings: Settings,
    *,
    pubkey: Path | None = None,
    witness: Witness | None = None,
) -> VerifyReport:
    """Walk the chain; check it against the witness's signed heads and purges. ``pubkey``
    (else ``MODELYARD_AUDIT_PUBKEY``) is the pinned key; ``witness`` defaults to
    :func:`open_witness`. Raises Unavailable when a configured witness cannot be reached."""
    report = VerifyReport()
    engine = audit_engine(db)
    try:
        with Session(engine) as session:
            walk = _walk_chain(session, report)
            head = session.execute(select(AuditHeadRow.seq, AuditHeadRow.hash)).one_or_none()
    finally:
        if engine is not db.engine:
            engine.dispose()
    _check_start(report, walk)
    if head is not None and report.ok and report.last_seq is not None:
        if int(head.seq) > report.last_seq:
            report.fail(
                "truncated",
                report.last_seq + 1,
                f"the head says seq {head.seq} but the log ends at seq {report.last_seq}: "
                "records were removed from the end",
            )
        elif int(head.seq) == report.last_seq and head.hash != walk.hashes[report.last_seq]:
            report.fail("edited", report.last_seq, "the head hash does not match the last record")
    pinned_path = pubkey or settings.audit_pubkey
    pinned = load_public_file(pinned_path) if pinned_path is not None else None
    owned = witness is None
    witness = witness or open_witness(settings)
    try:
        key, heads = _evidence(settings, witness, pinned, report)
    finally:
        if owned:
            witness.close()
    _check_heads(report, walk, key, heads)
    _check_purge(report, walk, key)
    return report


def _walk_chain(session: Session, report: VerifyReport) -> _Walk:
    walk = _Walk()
    query = select(AuditRecordRow).order_by(AuditRecordRow.seq).execution_options(yield_per=1000)
    rows = session.execute(query).scalars()  # streamed: the whole log never sits in memory
    prev: AuditRecordRow | None = None
    prev_prev_hash: str | None = None
    pending_links: list[tuple[int, str, str | None]] = []
    for row in rows:
        report.records += 1
        fields = {name: getattr(row, name) for name in HASHED_FIELDS}
        if record_hash(fields, row.prev_hash) != row.hash:
            report.fail("edited", row.seq, f"record {row.seq} was edited: its hash does not match")
        if prev is None:
            report.first_seq = row.seq
            walk.first_prev = row.prev_hash
        elif row.seq != prev.seq + 1:
            report.fail(
                "deleted",
                prev.seq + 1,
                f"records {prev.seq + 1}..{row.seq - 1} were deleted (sequence gap)",
            )
        elif row.prev_hash != prev.hash:
            pending_links.append((row.seq, row.prev_hash, prev_prev_hash))
        if row.kind == "purge":
            through = (int(row.details.get("through_seq", 0)), str(row.details.get("through_hash")))
            if walk.purge_through is None or through[0] > walk.purge_through[0]:
                walk.purge_through = through
                walk.purge_record = (row.seq, dict(row.details))
        walk.hashes[row.seq] = row.hash
        walk.by_hash[row.hash] = row.seq
        prev_prev_hash = prev.hash if prev is not None else None
        prev = row
        report.last_seq = row.seq
        session.expunge(row)
    for seq, link, before_predecessor in pending_links:
        if link == before_predecessor:
            report.fail("inserted", seq - 1, f"record {seq - 1} was inserted into the chain")
        elif link in walk.by_hash:
            report.fail(
                "reordered",
                seq,
                f"record {seq} links to record {walk.by_hash[link]}, not to {seq - 1}: reordered",
            )
        else:
            report.fail(
                "deleted",
                seq,
                f"the record before {seq} is missing (deleted, or {seq - 1} was replaced)",
            )
    return walk


def _check_start(report: VerifyReport, walk: _Walk) -> None:
    if report.first_seq is None:
        return
    if walk.purge_through is None:
        if report.first_seq != 1 or walk.first_prev != GENESIS_HASH:
            report.fail(
                "deleted",
                1,
                f"the log starts at seq {report.first_seq} and no purge record accounts for it",
            )
        return
    through_seq, through_hash = walk.purge_through
    if report.first_seq != through_seq + 1 or walk.first_prev != through_hash:
        report.fail(
            "deleted",
            report.first_seq,
            f"the log starts at seq {report.first_seq} but the newest purge ends at seq "
            f"{through_seq}: records before it were removed outside a purge",
        )
    else:
        report.notes.append(f"records 1..{through_seq} were purged by retention")


def _evidence(
    settings: Settings,
    witness: Witness,
    pinned: Ed25519PublicKey | None,
    report: VerifyReport,
) -> tuple[Ed25519PublicKey | None, list[tuple[str, HeadStatement]]]:
    """The key to check with and the signed heads to check, with a label for each."""
    home_heads, _ = read_home_copy(settings)
    if pinned is not None:
        report.pinned_key = fingerprint(pinned)
    if witness.kind == "witness":
        info = witness.info()
        witness_key = load_public_pem(info["public_key"].encode("ascii"), "the witness's key")
        heads = [
            (f"witness journal entry {n}", s)
            for n, s in enumerate(witness.journal(), start=1)
            if isinstance(s, HeadStatement)
        ]
        key = pinned or witness_key
        if pinned is not None and fingerprint(witness_key) != fingerprint(pinned):
            report.fail(
                "key",
                None,
                f"the witness signs with key {fingerprint(witness_key)}, not the pinned key "
                f"{fingerprint(pinned)}: it was replaced",
            )
        stray = sum(1 for c in home_heads if not _valid_head(key, c.statement()))
        if stray:
            report.notes.append(
                f"{stray} line(s) of {settings.audit_dir / 'checkpoints.jsonl'} are not signed "
                "by the witness's key (ignored: the witness's journal is the record)"
            )
        if pinned is not None:
            report.evidence = "witness"
            report.evidence_note = (
                "checked against the witness's journal and the pinned public key: evidence "
                "against anyone who can write the database and MODELYARD_HOME"
            )
        else:
            report.evidence_note = (
                "no pinned public key (MODELYARD_AUDIT_PUBKEY or --pubkey): the witness's key "
                "was taken on trust, so this proves nothing against a disk-level attacker"
            )
        return key, heads
    heads = [
        (f"checkpoint on line {c.line}", c.statement())
        if c.seq >= 0
        else (f"checkpoint on line {c.line}", HeadStatement(-1, "", "", ""))
        for c in home_heads
    ]
    home_key = verify_key(settings)
    if pinned is not None:
        if home_key is not None and fingerprint(home_key) != fingerprint(pinned):
            report.fail(
                "key",
                None,
                f"the key in {settings.audit_dir / 'signing.pub'} ({fingerprint(home_key)}) is "
                f"not the pinned key {fingerprint(pinned)}: it was replaced",
            )
        report.evidence = "pinned-local"
        report.evidence_note = (
            "local key: checked against the pinned public key, but the checkpoints come from "
            "MODELYARD_HOME, where they can be deleted; run a witness (MODELYARD_AUDIT_WITNESS) "
            "for evidence against a disk-level attacker"
        )
        return pinned, heads
    report.evidence_note = (
        "local key: not evidence against a disk-level attacker. No pinned public key "
        "(MODELYARD_AUDIT_PUBKEY or --pubkey): whoever can write the database and "
        "MODELYARD_HOME can rewrite the log and re-sign it, and this check cannot tell"
    )
    return home_key, heads


def _valid_head(key: Ed25519PublicKey | None, statement: HeadStatement) -> bool:
    return (
        key is not None
        and statement.seq >= 0
        and signature_valid(key, statement.sig, statement.signed_bytes())
    )


def _check_heads(
    report: VerifyReport,
    walk: _Walk,
    key: Ed25519PublicKey | None,
    heads: list[tuple[str, HeadStatement]],
) -> None:
    purged_through = walk.purge_through[0] if walk.purge_through else 0
    for label, checkpoint in heads:
        report.checkpoints += 1
        if not _valid_head(key, checkpoint):
            report.fail("checkpoint", None, f"{label} has an invalid signature")
            continue
        report.witnessed_seq = max(report.witnessed_seq or 0, checkpoint.seq)
        if checkpoint.seq <= purged_through:
            through = walk.purge_through
            if (
                through is not None
                and checkpoint.seq == through[0]
                and through[1] != checkpoint.hash
            ):
                report.fail(
                    "restored",
                    checkpoint.seq,
                    f"the purge record's hash for seq {checkpoint.seq} contradicts the "
                    "signed checkpoint",
                )
            continue
        stored = walk.hashes.get(checkpoint.seq)
        if stored is None:
            report.fail(
                "truncated",
                checkpoint.seq,
                f"a signed checkpoint covers seq {checkpoint.seq} but the log "
                f"{'ends at seq ' + str(report.last_seq) if report.last_seq else 'is empty'}: "
                "the log was truncated or restored from an older copy",
            )
        elif stored != checkpoint.hash:
            report.fail(
                "restored",
                checkpoint.seq,
                f"record {checkpoint.seq} differs from the signed checkpoint: the log was "
                "rewritten or restored from an older copy",
            )
    last, witnessed = report.last_seq, report.witnessed_seq or 0
    if last is not None and last > witnessed:
        report.notes.append(
            f"records {max(witnessed + 1, report.first_seq or 1)}..{last} are newer than the "
            "last signed checkpoint (not yet witnessed)"
        )


def _check_purge(report: VerifyReport, walk: _Walk, key: Ed25519PublicKey | None) -> None:
    if walk.purge_through is None or walk.purge_record is None:
        return
    seq, details = walk.purge_record
    through_seq, through_hash = walk.purge_through
    at, signature = details.get("witness_at"), details.get("witness_sig")
    if (
        key is None
        or not isinstance(at, str)
        or not signature_valid(key, signature, purge_bytes(through_seq, through_hash, at))
    ):
        report.fail(
            "purge",
            seq,
            f"purge record {seq} (records 1..{through_seq}) carries no valid witness "
            "signature: those records were removed outside a witnessed purge",
        )
