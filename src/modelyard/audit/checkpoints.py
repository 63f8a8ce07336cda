"""Signed checkpoints: the witness signs the chain's head, at least every N records and every
N seconds, only when the head extends the last one it signed.

:func:`sign_head` sends the witness the canonical bodies of the records since the last head
it signed, so that it can recompute the chain itself (see :mod:`modelyard.audit.witness.core`).
When the witness is a separate process, each statement is also copied to
``<home>/audit/checkpoints.jsonl`` (in the local-key mode that file *is* the journal); the copy
is a convenience — ``audit verify`` trusts the witness's journal and a pinned public key.

:class:`Checkpointer` is the gateway's background thread for the time bound: a ``kill -9``
loses at most ``audit_checkpoint_interval_s`` seconds of signed evidence.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from modelyard.audit.canonical import HASHED_FIELDS, canonical_json
from modelyard.audit.witness.client import Witness
from modelyard.audit.witness.core import MAX_BODIES, Refused
from modelyard.audit.witness.statements import HeadStatement, Statement, parse_statement
from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.store.audit_tables import AuditHeadRow, AuditRecordRow

if TYPE_CHECKING:
    from modelyard.audit.log import AuditLog

log = logging.getLogger(__name__)
ATTEMPTS = 3


@dataclass(frozen=True)
class Checkpoint:
    """A head statement as read from the home copy, with its line number there."""

    seq: int
    hash: str
    at: str
    signature: str
    line: int

    def statement(self) -> HeadStatement:
        return HeadStatement(self.seq, self.hash, self.at, self.signature)


def home_copy(settings: Settings) -> os.PathLike[str]:
    return settings.audit_dir / "checkpoints.jsonl"


def read_home_copy(settings: Settings) -> tuple[list[Checkpoint], list[Statement]]:
    """Head lines (malformed ones as seq -1, for verify to report) and purge statements."""
    path = settings.audit_dir / "checkpoints.jsonl"
    if not path.exists():
        return [], []
    heads: list[Checkpoint] = []
    purges: list[Statement] = []
    for number, raw in enumerate(path.read_text("ascii", errors="replace").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            statement = parse_statement(json.loads(raw))
        except ValueError:
            heads.append(Checkpoint(-1, "", "", "", number))
            continue
        if isinstance(statement, HeadStatement):
            heads.append(
                Checkpoint(statement.seq, statement.hash, statement.at, statement.sig, number)
            )
        else:
            purges.append(statement)
    return heads, purges


def read_checkpoints(settings: Settings) -> list[Checkpoint]:
    return read_home_copy(settings)[0]


def _copy_home(settings: Settings, statement: Statement) -> None:
    """Best effort: the witness's journal is the record, this copy only a convenience."""
    line = json.dumps(statement.to_json(), sort_keys=True) + "\n"
    try:
        fd = os.open(home_copy(settings), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("ascii"))  # one write: lines never mix
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("could not copy a signed checkpoint to %s: %s", home_copy(settings), exc)


def record_bodies(session: Session, first: int, last: int) -> tuple[list[str], str]:
    """The canonical bodies of records ``first..last`` and the stored hash of ``last``."""
    rows = session.execute(
        select(AuditRecordRow)
        .where(AuditRecordRow.seq >= first, AuditRecordRow.seq <= last)
        .order_by(AuditRecordRow.seq)
    ).scalars()
    bodies: list[str] = []
    last_hash = ""
    for expected, row in enumerate(rows, start=first):
        if row.seq != expected:
            break
        bodies.append(
            canonical_json({name: getattr(row, name) for name in HASHED_FIELDS}).decode("utf-8")
        )
        last_hash = row.hash
        session.expunge(row)
    if len(bodies) != last - first + 1:
        raise Refused(
            f"records {first}..{last} are not all in the log: they cannot be witnessed",
            code="gap",
        )
    return bodies, last_hash


def sign_head(engine: Engine, witness: Witness, settings: Settings) -> HeadStatement | None:
    """Have the witness sign the current head. None for an empty log; :class:`Refused`
    when the witness will not (the chain was rewritten, or is behind what it signed)."""
    for _ in range(ATTEMPTS):
        try:
            return _sign_once(engine, witness, settings)
        except Refused as exc:
            if exc.code != "stale":
                raise
            # another process signed a newer head meanwhile: try again from there
    return None


def _sign_once(engine: Engine, witness: Witness, settings: Settings) -> HeadStatement | None:
    with Session(engine) as session:
        head = session.execute(select(AuditHeadRow.seq, AuditHeadRow.hash)).one()
        seq, head_hash = int(head.seq), str(head.hash)
        if seq == 0:
            return None
        last = witness.info()["last"]
        if last is not None and int(last["seq"]) > seq:
            raise Refused(
                f"the log's head is seq {seq} but the witness already signed seq "
                f"{last['seq']}: the database was truncated or restored from an older copy",
                code="behind",
            )
        if last is not None:  # from the log's own record there: the witness compares
            position = int(last["seq"])
            stored = session.execute(
                select(AuditRecordRow.hash).where(AuditRecordRow.seq == position)
            ).scalar_one_or_none()
            if stored is None:
                raise Refused(
                    f"record {position}, which the witness signed, is not in the log",
                    code="gap",
                )
            position_hash = str(stored)
        else:
            first = session.execute(
                select(AuditRecordRow.seq, AuditRecordRow.prev_hash)
                .order_by(AuditRecordRow.seq)
                .limit(1)
            ).one()
            position, position_hash = int(first.seq) - 1, str(first.prev_hash)
        if position == seq:
            if position_hash != head_hash or position_hash != last["hash"]:
                raise Refused(
                    f"record {seq} differs from the head the witness signed: the chain was "
                    "rewritten",
                    code="fork",
                )
            return None  # already signed
        statement: HeadStatement | None = None
        while position < seq:
            stop = min(seq, position + MAX_BODIES)
            bodies, stop_hash = record_bodies(session, position + 1, stop)
            statement = witness.sign_head(position, position_hash, bodies, stop, stop_hash)
            if witness.kind != "local":
                _copy_home(settings, statement)
            position, position_hash = stop, stop_hash
        return statement


class Checkpointer:
    """Signs the head at least every ``interval_s`` while records arrive, and every ``every``
    records. ``clock`` is injectable (tests drive :meth:`tick` with a fake one). While
    :meth:`start`'s thread runs, the log's appends leave signing to it, so that no request
    waits for the witness."""

    def __init__(
        self,
        audit: AuditLog,
        *,
        interval_s: float,
        every: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audit = audit
        self.interval_s = interval_s
        self.every = every
        self.clock = clock
        self.since = clock()
        self.signed_seq: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> bool:
        """Sign when records arrived and the interval has passed; True when it signed."""
        try:
            head = self.audit.head()
            if head.seq == 0 or head.seq == self.signed_seq:
                self.since = self.clock()
                return False
            by_count = self.every is not None and head.seq - (self.signed_seq or 0) >= self.every
            if not by_count and self.clock() - self.since < self.interval_s:
                return False
            self.audit.checkpoint()
        except ModelyardError as exc:  # the witness down, or refusing: say so, keep trying
            log.warning("audit checkpoint failed: %s", exc.message)
            return False
        self.signed_seq, self.since = head.seq, self.clock()
        return True

    def start(self) -> Checkpointer:
        poll_s = min(1.0, self.interval_s / 4)
        self._stop.clear()
        self.audit.sign_on_append = False

        def run() -> None:
            while not self._stop.wait(poll_s):
                self.tick()

        self._thread = threading.Thread(target=run, name="audit-checkpointer", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.audit.sign_on_append = True
