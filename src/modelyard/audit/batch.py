"""One transaction's worth of audit records: prepare, allocate, seal, chain, insert.

A batch of K entries costs a constant number of statements, whatever K. Before the lock:
each entry is made storable and checked, the data subjects' keys it names are looked up
in one ``SELECT … IN`` (:mod:`modelyard.audit.subject_keys`). Then, under the lock:

1. ``UPDATE audit_head SET seq = seq + K … RETURNING seq, hash`` takes the head-row lock
   (every appender of every process queues for it, so the chain is one total order) and
   allocates K sequence numbers at once;
2. entries that arrived while the lock was awaited join the batch (``late``: the group
   commit's; the numbers after the K are this holder's too, while it holds the lock);
3. one ``SELECT`` for the keys not found before the lock (another process may have made
   them meanwhile) and the late entries' keys; one ``INSERT`` of those still missing;
4. in Python, each entry is sealed under its sequence number (identifiers and texts) and
   its hash chained onto the previous one;
5. one multi-row ``INSERT`` of the records, one ``UPDATE`` that sets the head to the last
   of them (sequence number and hash).

An entry that cannot be turned into a record (a value JSON cannot hold, say) gets no
sequence number and its exception as its outcome; the others are appended around it and
the head ends at the last one appended. Statements run on the caller's connection, in the
caller's transaction; the caller commits (and the head-row lock is held until then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from modelyard.audit import cipher
from modelyard.audit.canonical import canonical_json, iso_now, record_hash
from modelyard.audit.entry import Appended, AuditEntry
from modelyard.audit.identities import seal, storable
from modelyard.audit.subject_keys import SubjectKeys, identifiers
from modelyard.audit.text_digest import HMAC_MODE, text_hmac, text_secret
from modelyard.config import Settings
from modelyard.store.audit_tables import AuditHeadRow, AuditRecordRow

Outcome = Appended | Exception
"""What became of one entry: its place in the chain, or why it has none."""

_BUMP = (
    update(AuditHeadRow)
    .where(AuditHeadRow.id == 1)
    .values(seq=AuditHeadRow.seq + bindparam("count"))
)
_ALLOCATE = _BUMP.returning(AuditHeadRow.seq, AuditHeadRow.hash)
_MOVE_HEAD = (
    update(AuditHeadRow)
    .where(AuditHeadRow.id == 1)
    .values(seq=bindparam("last"), hash=bindparam("last_hash"))
)
_INSERT_RECORDS = insert(AuditRecordRow)


Late = Callable[[], Sequence[AuditEntry]]
"""Called once the head-row lock is held: the entries that arrived while it was awaited."""


@dataclass
class _Batch:
    """Entries on their way into the chain: storable copies, and one outcome slot each."""

    ready: list[tuple[int, AuditEntry]] = field(default_factory=list)
    outcomes: list[Outcome | None] = field(default_factory=list)

    def add(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        """Make ``entries`` storable; the ones that cannot be get their exception."""
        added = []
        for entry in entries:
            index = len(self.outcomes)
            self.outcomes.append(None)
            try:
                stored = AuditEntry(**storable(dict(vars(entry))))
                canonical_json(stored.details)  # a value JSON cannot hold fails here, alone
            except Exception as exc:  # noqa: BLE001 - this entry's own outcome, for its caller
                self.outcomes[index] = exc
                continue
            self.ready.append((index, stored))
            added.append(stored)
        return added

    def finished(self) -> list[Outcome]:
        done = [outcome for outcome in self.outcomes if outcome is not None]
        assert len(done) == len(self.outcomes), "an entry left without an outcome"
        return done


def append_batch(
    conn: Connection,
    settings: Settings,
    entries: Sequence[AuditEntry],
    digests: dict[str, str] | None = None,
    late: Late | None = None,
) -> list[Outcome]:
    """Append ``entries`` (then ``late()``'s) in ``conn``'s transaction, in order; one
    outcome per entry. ``digests`` caches identifiers' digests across batches. Database
    errors propagate: the transaction is lost as a whole."""
    batch = _Batch()
    names = [name for entry in batch.add(entries) for name in identifiers(entry)]
    if not batch.ready and late is None:
        return batch.finished()
    keys = SubjectKeys(conn, settings, digests)
    keys.prefetch(names)
    last, prev_hash = _allocate(conn, len(batch.ready))  # the head-row lock, to the commit
    seq = last - len(batch.ready) + 1
    if late is not None:
        names = [name for entry in batch.add(late()) for name in identifiers(entry)]
    keys.lookup_missing(names)
    rows: list[dict[str, Any]] = []
    for index, entry in batch.ready:
        try:
            fields = _stored_fields(settings, entry, seq, keys)
            digest = record_hash(fields, prev_hash)
        except SQLAlchemyError:
            raise
        except Exception as exc:  # noqa: BLE001 - this entry's own outcome, reported to its caller
            batch.outcomes[index] = exc
            continue
        rows.append({"seq": seq, "prev_hash": prev_hash, "hash": digest, **fields})
        batch.outcomes[index] = Appended(seq, digest)
        prev_hash, seq = digest, seq + 1
    keys.flush()
    if rows:
        conn.execute(_INSERT_RECORDS, rows)
    conn.execute(_MOVE_HEAD, {"last": seq - 1, "last_hash": prev_hash})
    return batch.finished()


def _allocate(conn: Connection, count: int) -> tuple[int, str]:
    """Take the head-row lock, move the head ``count`` places: the new last sequence number
    and the hash the first of them chains onto (the head's, as it was)."""
    if conn.dialect.update_returning:
        row = conn.execute(_ALLOCATE, {"count": count}).one()
    else:  # an SQLite before 3.35: the same lock (the write), then a read inside it
        conn.execute(_BUMP, {"count": count})
        row = conn.execute(select(AuditHeadRow.seq, AuditHeadRow.hash)).one()
    return int(row.seq), str(row.hash)


def _stored_fields(
    settings: Settings, entry: AuditEntry, seq: int, keys: SubjectKeys
) -> dict[str, Any]:
    """The stored columns of record ``seq``. Identifiers of people are pseudonyms sealed
    under the subject's key (:mod:`modelyard.audit.identities`); text is sealed, digested
    with the deployment's HMAC key (:mod:`modelyard.audit.text_digest`), or left out."""
    mode = entry.text_mode
    has_text = entry.prompt is not None or entry.response is not None
    if has_text and mode in ("full", "redacted") and settings.audit_store_text == "hash":
        mode = "hash"
    actor, target, details = seal(
        seq, entry.kind, entry.actor, entry.target, dict(entry.details), keys.key_for
    )
    subject_id = key = None
    owner = entry.subject or (entry.actor if has_text else None)
    if owner is not None:
        subject_id, key = keys.key_for(owner)
    prompt_ct = response_ct = prompt_sha = response_sha = None
    if mode in ("full", "redacted") and has_text and key is not None:
        if entry.prompt is not None:
            prompt_ct = cipher.encrypt(key, entry.prompt, f"{seq}:prompt")
        if entry.response is not None:
            response_ct = cipher.encrypt(key, entry.response, f"{seq}:response")
    elif mode == "hash" and has_text:
        secret = text_secret(settings)
        prompt_sha = text_hmac(secret, entry.prompt) if entry.prompt is not None else None
        response_sha = text_hmac(secret, entry.response) if entry.response is not None else None
        mode = HMAC_MODE
    else:
        mode = "none"
    return {
        "kind": entry.kind,
        "at": iso_now(),
        "actor": actor,
        "team": entry.team,
        "route": entry.route,
        "target": target,
        "blob_sha256": entry.blob_sha256,
        "status": entry.status,
        "latency_ms": entry.latency_ms,
        "prompt_tokens": entry.prompt_tokens,
        "completion_tokens": entry.completion_tokens,
        "client": entry.client,
        "data_subject": subject_id,
        "text_mode": mode,
        "prompt_ct": prompt_ct,
        "response_ct": response_ct,
        "prompt_sha256": prompt_sha,
        "response_sha256": response_sha,
        "details": details,
    }
