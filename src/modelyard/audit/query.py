"""Reading the audit log for people and auditors: list, show, export (jsonl/csv).

Texts are decrypted with their subject's key when it still exists; an erased subject's
texts read ``[erased]``, and so do the names sealed under its key
(:mod:`modelyard.audit.identities`). Nothing here writes.

A request that reached the model has two records: ``request.accepted`` (written before the
first byte of the answer: who, which model, the prompt) and ``request`` (written at the end:
status, tokens, latency, the answer; ``details.accepted_seq`` links the two). Tokens live
only on the ``request`` record, so sums over ``kind == "request"`` count each request once.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from modelyard.audit import cipher
from modelyard.audit.canonical import iso
from modelyard.audit.connection import audit_engine
from modelyard.audit.identities import ERASED, reveal
from modelyard.errors import InvalidInput, NotFound
from modelyard.store.audit_tables import AuditRecordRow, AuditSubjectKeyRow
from modelyard.store.database import Database

ACCEPTED = "request.accepted"
"""The record written before a request's first byte; its completion is a ``request``."""
EXPORT_COLUMNS = (
    "seq",
    "kind",
    "at",
    "actor",
    "team",
    "route",
    "target",
    "blob_sha256",
    "status",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "client",
    "data_subject",
    "text_mode",
    "prompt",
    "response",
    "prompt_sha256",
    "response_sha256",
    "details",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class Filter:
    since: datetime | None = None
    until: datetime | None = None
    kind: str | None = None
    actor: str | None = None
    team: str | None = None
    limit: int | None = None
    newest_first: bool = False


def _select(where: Filter) -> Select[AuditRecordRow]:
    """The SQL part of ``where``; the actor is matched after its seal is opened."""
    query = select(AuditRecordRow)
    if where.since is not None:
        query = query.where(AuditRecordRow.at >= iso(where.since))
    if where.until is not None:
        query = query.where(AuditRecordRow.at < iso(where.until))
    if where.kind:
        query = query.where(AuditRecordRow.kind == where.kind)
    if where.team:
        query = query.where(AuditRecordRow.team == where.team)
    order = AuditRecordRow.seq.desc() if where.newest_first else AuditRecordRow.seq
    query = query.order_by(order)
    if where.limit is not None and not where.actor:
        query = query.limit(where.limit)
    return query


def _open(key: str | None, token: str | None, aad: str) -> str | None:
    if token is None:
        return None
    if key is None:
        return ERASED
    plain = cipher.decrypt(key, token, aad)
    return ERASED if plain is None else plain


def _as_dict(row: AuditRecordRow, keys: dict[str, str]) -> dict[str, Any]:
    key = keys.get(row.data_subject) if row.data_subject else None
    out: dict[str, Any] = {
        name: getattr(row, name) for name in EXPORT_COLUMNS if hasattr(row, name)
    }
    out["actor"], out["target"], out["details"] = reveal(
        row.seq, row.actor, row.target, dict(row.details or {}), keys
    )
    out["prompt"] = _open(key, row.prompt_ct, f"{row.seq}:prompt")
    out["response"] = _open(key, row.response_ct, f"{row.seq}:response")
    return {name: out.get(name) for name in EXPORT_COLUMNS}


def iter_records(db: Database, where: Filter) -> Iterator[dict[str, Any]]:
    """Records matching ``where`` (oldest first unless asked), texts decrypted."""
    engine = audit_engine(db)
    try:
        with Session(engine) as session:
            keys = {r.id: r.key for r in session.execute(select(AuditSubjectKeyRow)).scalars()}
            rows = list(session.execute(_select(where)).scalars())
    finally:
        if engine is not db.engine:
            engine.dispose()
    shown = 0
    for row in rows:
        record = _as_dict(row, keys)
        if where.actor and record["actor"] != where.actor:
            continue
        yield record
        shown += 1
        if where.limit is not None and shown >= where.limit:
            return


def open_requests(db: Database) -> list[int]:
    """Sequence numbers of ``request.accepted`` records that no completion record answers:
    requests whose gateway died (or whose completion could not be written) mid-answer."""
    engine = audit_engine(db)
    try:
        with Session(engine) as session:
            accepted = set(
                session.execute(
                    select(AuditRecordRow.seq).where(AuditRecordRow.kind == ACCEPTED)
                ).scalars()
            )
            answered = {
                int(details["accepted_seq"])
                for details in session.execute(
                    select(AuditRecordRow.details).where(AuditRecordRow.kind == "request")
                ).scalars()
                if isinstance(details, dict) and details.get("accepted_seq") is not None
            }
    finally:
        if engine is not db.engine:
            engine.dispose()
    return sorted(accepted - answered)


def show_record(db: Database, seq: int) -> dict[str, Any]:
    engine = audit_engine(db)
    try:
        with Session(engine) as session:
            row = session.get(AuditRecordRow, seq)
            if row is None:
                raise NotFound(f"no audit record {seq}")
            keys = {}
            if row.data_subject:
                key = session.execute(
                    select(AuditSubjectKeyRow.key).where(AuditSubjectKeyRow.id == row.data_subject)
                ).scalar_one_or_none()
                if key is not None:
                    keys[row.data_subject] = key
            return _as_dict(row, keys)
    finally:
        if engine is not db.engine:
            engine.dispose()


def export_lines(records: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """Serialise records as JSON lines or CSV (header first), one string per line."""
    if fmt == "jsonl":
        for record in records:
            yield json.dumps(record, ensure_ascii=False, default=str) + "\n"
        return
    if fmt != "csv":
        raise InvalidInput(f"unknown export format {fmt!r} (use jsonl or csv)")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    yield _drain(buffer)
    for record in records:
        row = dict(record)
        row["details"] = json.dumps(row["details"], sort_keys=True, ensure_ascii=False)
        writer.writerow(["" if row[c] is None else row[c] for c in EXPORT_COLUMNS])
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    value = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return value
