"""The witness's rules and its append-only journal.

A witness signs a head ``(seq, hash)`` only when it can check, from the records' canonical
bodies it is sent, that the new head **extends** every head it signed before: it recomputes
``hash_i = SHA-256(hash_{i-1} || "\\n" || body_i)`` from a head it signed (or from the
genesis hash) and refuses when the result passes one of its signed sequence numbers with a
different hash (a rewritten chain) or does not reach the claimed head. A rewritten chain can
therefore never get a new signature, whoever holds the database.

It signs a purge of ``1..through_seq`` only when ``through_hash`` is proven the same way to
lie on its signed chain, between two of its heads, and when that record is older than the
witness's own minimum age (so a database writer cannot have recent records "purged").

Every statement is appended to the journal (one ``write`` + ``fsync``) before its signature
is returned. The journal is re-read under an exclusive ``flock`` before each operation, so
several processes may share one (the in-home, local-key mode does).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modelyard.audit.canonical import GENESIS_HASH, iso, parse_iso
from modelyard.audit.witness.signers import Signer
from modelyard.audit.witness.statements import (
    HeadStatement,
    PurgeStatement,
    Statement,
    head_bytes,
    parse_statement,
    public_pem,
    purge_bytes,
    statement_line,
)
from modelyard.errors import Conflict, InvalidInput, StoreFault

MAX_BODIES = 1000
"""Records per request; a client signs a longer stretch in steps."""


class Refused(Conflict):
    """The witness will not sign: ``code`` says why (fork, stale, uncovered, too-young…)."""


def chain_hash(prev_hash: str, body: str) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(body.encode("utf-8"))
    return digest.hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class WitnessCore:
    """The rules over one journal file and one signer. ``strict``: a malformed journal line
    is a fault (the witness's own directory); otherwise it is skipped (the in-home copy)."""

    def __init__(
        self,
        journal: Path,
        signer: Signer,
        *,
        purge_min_age: timedelta = timedelta(days=1),
        strict: bool = True,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.path = journal
        self.signer = signer
        self.purge_min_age = purge_min_age
        self.strict = strict
        self.clock = clock
        self.fd = os.open(journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self._mutex = threading.Lock()  # flock excludes other processes, this other threads
        self.offset = 0
        self.heads: dict[int, HeadStatement] = {}
        self.statements: list[Statement] = []
        self.last: HeadStatement | None = None

    def close(self) -> None:
        os.close(self.fd)

    # -- the journal --------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                self._catch_up()
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        size = os.fstat(self.fd).st_size
        if size < self.offset:  # the file was replaced or cut: start over
            if self.strict:
                raise StoreFault(f"the witness journal {self.path} shrank: it was tampered with")
            self.offset, self.heads, self.statements, self.last = 0, {}, [], None
        if size == self.offset:
            return
        data = os.pread(self.fd, size - self.offset, self.offset)
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a torn last line: never acknowledged (fsync precedes replies)
            os.ftruncate(self.fd, self.offset + end)
            data = data[:end]
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                self._remember(parse_statement(json.loads(raw)))
            except ValueError as exc:
                if self.strict:
                    raise StoreFault(f"the witness journal {self.path} is corrupt: {exc}") from exc
        self.offset += end

    def _remember(self, statement: Statement) -> None:
        self.statements.append(statement)
        if isinstance(statement, HeadStatement):
            self.heads[statement.seq] = statement
            if self.last is None or statement.seq > self.last.seq:
                self.last = statement

    def _append(self, statement: Statement) -> None:
        line = statement_line(statement)
        os.write(self.fd, line)  # O_APPEND, one write: concurrent writers never interleave
        os.fsync(self.fd)
        self.offset += len(line)
        self._remember(statement)

    def _sign(self, data: bytes) -> str:
        return base64.b64encode(self.signer.sign(data)).decode("ascii")

    # -- operations ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        with self._locked():
            last = self.last
            return {
                "public_key": public_pem(self.signer.public_key()),
                "last": None if last is None else {"seq": last.seq, "hash": last.hash},
                "statements": len(self.statements),
            }

    def journal(self) -> list[Statement]:
        with self._locked():
            return list(self.statements)

    def sign_head(
        self, from_seq: int, from_hash: str, bodies: list[str], seq: int, head_hash: str
    ) -> HeadStatement:
        with self._locked():
            _check_shape(from_seq, bodies, seq)
            first = self.last is None
            if not first:
                self._anchor(from_seq, from_hash)
            elif from_seq == 0 and from_hash != GENESIS_HASH:
                raise Refused("the chain does not start at the genesis hash", code="fork")
            reached = self._walk(from_seq, from_hash, bodies)[0]
            if reached != head_hash:
                raise Refused("the records sent do not chain to the claimed head", code="bad-chain")
            if self.last is not None and seq <= self.last.seq:
                known = self.heads.get(seq)
                if known is not None:
                    return known
                raise Refused(f"a newer head (seq {self.last.seq}) is already signed", code="stale")
            at = iso(self.clock())
            statement = HeadStatement(
                seq, head_hash, at, self._sign(head_bytes(seq, head_hash, at))
            )
            self._append(statement)
            return statement

    def anchors(self, through_seq: int) -> dict[str, Any]:
        """The signed heads around ``through_seq``: a purge sends the records between them."""
        with self._locked():
            below = [s for s in self.heads if s < through_seq]
            above = [s for s in self.heads if s >= through_seq]
            if not above:
                raise Refused(
                    f"no signed head covers seq {through_seq}: sign a checkpoint first",
                    code="uncovered",
                )
            low = max(below) if below else 0
            return {
                "from_seq": low,
                "from_hash": self.heads[low].hash if low else GENESIS_HASH,
                "to_seq": min(above),
            }

    def sign_purge(
        self, through_seq: int, from_seq: int, from_hash: str, bodies: list[str]
    ) -> PurgeStatement:
        with self._locked():
            end = from_seq + len(bodies)
            _check_shape(from_seq, bodies, end)
            if not from_seq < through_seq <= end:
                raise InvalidInput("the records sent do not reach the purged range's end")
            self._anchor(from_seq, from_hash)
            reached, through_hash, through_body = self._walk(
                from_seq, from_hash, bodies, capture=through_seq
            )
            known = self.heads.get(end)
            if known is None or known.hash != reached:
                raise Refused(
                    f"the records sent do not end at a head this witness signed (seq {end})",
                    code="uncovered",
                )
            self._check_age(through_seq, through_body)
            at = iso(self.clock())
            signature = self._sign(purge_bytes(through_seq, through_hash, at))
            statement = PurgeStatement(through_seq, through_hash, at, signature)
            self._append(statement)
            return statement

    # -- rules --------------------------------------------------------------------------

    def _anchor(self, from_seq: int, from_hash: str) -> None:
        if from_seq == 0:
            if from_hash != GENESIS_HASH:
                raise Refused("the chain does not start at the genesis hash", code="fork")
            return
        known = self.heads.get(from_seq)
        if known is None:
            raise Refused(f"seq {from_seq} is not a head this witness signed", code="unanchored")
        if known.hash != from_hash:
            raise Refused(
                f"record {from_seq} differs from the head this witness signed: "
                "the chain was rewritten",
                code="fork",
            )

    def _walk(
        self, from_seq: int, from_hash: str, bodies: list[str], capture: int | None = None
    ) -> tuple[str, str, str]:
        current, seq = from_hash, from_seq
        captured_hash = captured_body = ""
        for body in bodies:
            seq += 1
            current = chain_hash(current, body)
            known = self.heads.get(seq)
            if known is not None and known.hash != current:
                raise Refused(
                    f"record {seq} differs from the head this witness signed: "
                    "the chain was rewritten",
                    code="fork",
                )
            if seq == capture:
                captured_hash, captured_body = current, body
        return current, captured_hash, captured_body

    def _check_age(self, seq: int, body: str) -> None:
        try:
            at = parse_iso(str(json.loads(body)["at"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"record {seq} has no readable time") from exc
        if self.clock() - at < self.purge_min_age:
            raise Refused(
                f"record {seq} is younger than the witness's minimum purge age "
                f"({self.purge_min_age.days} days)",
                code="too-young",
            )


def _check_shape(from_seq: int, bodies: list[str], seq: int) -> None:
    if from_seq < 0 or seq != from_seq + len(bodies) or seq < 1:
        raise InvalidInput("the head's sequence number does not match the records sent")
    if len(bodies) > MAX_BODIES:
        raise InvalidInput(f"at most {MAX_BODIES} records per request")
    if not all(isinstance(body, str) for body in bodies):
        raise InvalidInput("record bodies must be strings")
