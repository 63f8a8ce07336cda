"""``audit verify``: re-walk the chain, check the signed checkpoints, name the first problem.

Detected:

* **edited** — a record's stored hash differs from the hash of its columns;
* **deleted** — a gap in sequence numbers, or a record whose predecessor is missing;
* **inserted** — a record whose successor still links to the record before it;
* **reordered** — a record that links to a record other than its predecessor;
* **truncated / restored** — a signed checkpoint names a sequence number the log no longer
  has, or a hash that the record at that number no longer has (an older copy of the database);
* **purge** — the first surviving record must continue from the hash the newest purge record
  carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.audit.canonical import GENESIS_HASH, HASHED_FIELDS, record_hash
from modelyard.audit.checkpoints import read_checkpoints, signature_ok
from modelyard.audit.connection import audit_engine
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
        }


@dataclass
class _Walk:
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> stored hash
    by_hash: dict[str, int] = field(default_factory=dict)
    first_prev: str | None = None
    purge_through: tuple[int, str] | None = None


def verify(db: Database, settings: Settings) -> VerifyReport:
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
    _check_checkpoints(settings, report, walk)
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


def _check_checkpoints(settings: Settings, report: VerifyReport, walk: _Walk) -> None:
    purged_through = walk.purge_through[0] if walk.purge_through else 0
    for checkpoint in read_checkpoints(settings):
        report.checkpoints += 1
        if not signature_ok(settings, checkpoint):
            report.fail(
                "checkpoint",
                None,
                f"checkpoint on line {checkpoint.line} has an invalid signature",
            )
            continue
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
