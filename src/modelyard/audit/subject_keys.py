"""The data subjects' keys that one batch of appends needs, looked up together.

Every identifier a record names (the acting key, a ``key:`` target, identity fields in
``details``, the data subject of its texts) is sealed under that identifier's subject key
(:mod:`modelyard.audit.identities`). A batch asks for all of them in one ``SELECT … IN``
before it takes the head-row lock. Keys are made only under that lock (so two processes
never make the same one): the digests not found before it are looked for once more, and
those still missing are made in memory and inserted in one statement. A name nobody
predicted is looked up alone. Keys are never kept beyond one batch (an erasure in another
process must be seen by the next append); identifiers' digests may be (``digests``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, insert, select

from modelyard.audit import cipher
from modelyard.audit.canonical import iso_now
from modelyard.audit.entry import AuditEntry
from modelyard.audit.identities import IDENTITY_KEYS, KEY_TARGET, SEALED
from modelyard.audit.secrets import subject_digest
from modelyard.config import Settings
from modelyard.store.audit_tables import AuditSubjectKeyRow

MAX_DIGESTS = 10_000
"""Identifiers whose digests a shared ``digests`` cache keeps (then it starts again)."""


class SubjectKeys:
    """Identifier → ``(subject id, key)`` for one transaction (made on first use)."""

    def __init__(
        self, conn: Connection, settings: Settings, digests: dict[str, str] | None = None
    ) -> None:
        self.conn = conn
        self.settings = settings
        self._digests = {} if digests is None else digests
        self._known: dict[str, tuple[str, str]] = {}
        self._looked_up: set[str] = set()
        self._new: list[dict[str, str]] = []

    def digest(self, name: str) -> str:
        found = self._digests.get(name)
        if found is None:
            if len(self._digests) >= MAX_DIGESTS:
                self._digests.clear()
            found = self._digests[name] = subject_digest(self.settings, name)
        return found

    def prefetch(self, names: Iterable[str]) -> None:
        """Look up every key of ``names`` in one statement."""
        self._select({self.digest(name) for name in names} - self._looked_up)

    def lookup_missing(self, names: Iterable[str] = ()) -> None:
        """Under the head-row lock, in one statement: look again for the keys
        :meth:`prefetch` did not find, and for those of ``names``."""
        again = {digest for digest in self._looked_up if digest not in self._known}
        self._select(again | ({self.digest(name) for name in names} - self._looked_up))

    def _select(self, digests: set[str]) -> None:
        wanted = sorted(digests)
        if not wanted:
            return
        rows = self.conn.execute(
            select(
                AuditSubjectKeyRow.subject_digest, AuditSubjectKeyRow.id, AuditSubjectKeyRow.key
            ).where(AuditSubjectKeyRow.subject_digest.in_(wanted))
        )
        for row in rows:
            self._known[row.subject_digest] = (row.id, row.key)
        self._looked_up.update(wanted)

    def key_for(self, name: str) -> tuple[str, str]:
        digest = self.digest(name)
        if digest not in self._looked_up:
            self._select({digest})
        found = self._known.get(digest)
        if found is None:
            found = (str(uuid.uuid4()), cipher.new_key())
            self._known[digest] = found
            self._new.append(
                {
                    "subject_digest": digest,
                    "id": found[0],
                    "key": found[1],
                    "created_at": iso_now(),
                }
            )
        return found

    def flush(self) -> None:
        """Insert the keys made since the last flush (one statement)."""
        if self._new:
            self.conn.execute(insert(AuditSubjectKeyRow), self._new)
            self._new = []


def identifiers(entry: AuditEntry) -> Iterator[str]:
    """The names :func:`~modelyard.audit.identities.seal` and the texts' owner will ask
    keys for: a prediction (a miss costs one lookup, never a wrong key)."""
    has_text = entry.prompt is not None or entry.response is not None
    if entry.actor is not None:
        yield entry.actor
    owner = entry.subject or (entry.actor if has_text else None)
    if owner is not None:
        yield owner
    if entry.kind == "event" and entry.target and entry.target.startswith(KEY_TARGET):
        yield entry.target[len(KEY_TARGET) :]
    yield from _identity_values({k: v for k, v in entry.details.items() if k != SEALED})


def _identity_values(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in IDENTITY_KEYS and isinstance(item, str) and item:
                yield item
            else:
                yield from _identity_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _identity_values(item)
