"""What the audit pages read: filtered pages of records, and the state of verification.

Records come from :func:`modelyard.audit.query.iter_records` (the reader behind ``modelyard
audit list`` and ``export``), newest first, so names are shown as the seals open and erased
subjects read ``[erased]`` exactly as on the command line. The filters that need the opened
record — an event's name, actor, target, free text — are applied here, and paging is by
sequence number (``before``), which stays stable while new records arrive.

The verify status runs :func:`modelyard.audit.verify.verify`, the check behind ``modelyard
audit verify``, and asks the witness what it last signed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from modelyard.audit.query import Filter, iter_records
from modelyard.audit.verify import VerifyReport, verify
from modelyard.audit.witness.client import open_witness
from modelyard.audit.witness.statements import HeadStatement, fingerprint, load_public_pem
from modelyard.catalog.audit_events import EVENT_KINDS
from modelyard.config import Settings
from modelyard.errors import InvalidInput, ModelyardError
from modelyard.store.database import Database

RECORD_KINDS = ("request", "request.accepted", "event", "purge")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def kind_choices() -> list[str]:
    """Record kinds, then every event kind (``key.create``…) by name."""
    return [*RECORD_KINDS, *sorted(k for k in EVENT_KINDS if k not in RECORD_KINDS)]


def parse_moment(text: str | None, *, param: str, end_of_day: bool = False) -> datetime | None:
    """An ISO date or date/time (UTC unless a zone is given). A bare date as the end of a
    range means the end of that day, so ``until`` = today includes today."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            f"cannot read {value!r} as a date: use YYYY-MM-DD or an ISO date and time",
            param=param,
        ) from exc
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if end_of_day and len(value) == 10:
        moment += timedelta(days=1)
    return moment


@dataclass(frozen=True)
class AuditQuery:
    """The browser's filters, as submitted (text) and checked."""

    kind: str = ""
    actor: str = ""
    target: str = ""
    since: str = ""
    until: str = ""
    text: str = ""
    before: int | None = None
    page_size: int = PAGE_SIZE

    def check(self) -> tuple[Filter, str | None]:
        """The SQL-side filter, and the event name to match after opening (or None)."""
        event = None
        kind: str | None = self.kind or None
        if kind is not None and kind not in RECORD_KINDS:
            if kind not in EVENT_KINDS:
                raise InvalidInput(
                    f"unknown record kind {kind!r}: use {', '.join(RECORD_KINDS)} or an event "
                    "kind such as key.create",
                    param="kind",
                )
            kind, event = "event", self.kind
        since = parse_moment(self.since, param="since")
        until = parse_moment(self.until, param="until", end_of_day=True)
        if since is not None and until is not None and until <= since:
            raise InvalidInput("the end of the period must come after its start", param="until")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"size must be 1 to {MAX_PAGE_SIZE} records", param="size")
        return Filter(since=since, until=until, kind=kind, newest_first=True), event

    def link(self, **changes: Any) -> str:
        """The query string of this query with ``changes`` (for paging links)."""
        fields = {
            "kind": self.kind,
            "actor": self.actor,
            "target": self.target,
            "since": self.since,
            "until": self.until,
            "text": self.text,
            "before": self.before,
            "size": self.page_size if self.page_size != PAGE_SIZE else None,
        }
        fields.update(changes)
        return urlencode({k: v for k, v in fields.items() if v not in (None, "")})


def _contains(value: Any, needle: str) -> bool:
    return needle.lower() in str(value or "").lower()


def _matches(record: dict[str, Any], query: AuditQuery, event: str | None) -> bool:
    details = record.get("details") or {}
    if event is not None and details.get("event") != event:
        return False
    if query.actor and not _contains(record.get("actor"), query.actor):
        return False
    if query.target and not _contains(record.get("target"), query.target):
        return False
    if query.text:
        blob = json.dumps(record, ensure_ascii=False, default=str)
        if not _contains(blob, query.text):
            return False
    return True


def record_kind(record: dict[str, Any]) -> str:
    """``key.create`` for an event, else the record kind."""
    details = record.get("details") or {}
    if record.get("kind") == "event" and isinstance(details, dict):
        return str(details.get("event") or "event")
    return str(record.get("kind"))


@dataclass(frozen=True)
class AuditPage:
    records: list[dict[str, Any]]
    older: int | None
    """``before`` for the next (older) page, or None on the last page."""


def browse(db: Database, query: AuditQuery) -> AuditPage:
    """One page of the records matching ``query``, newest first."""
    where, event = query.check()
    found: list[dict[str, Any]] = []
    for record in iter_records(db, where):
        if query.before is not None and int(record["seq"]) >= query.before:
            continue
        if not _matches(record, query, event):
            continue
        found.append({**record, "event": record_kind(record)})
        if len(found) > query.page_size:
            break
    more = len(found) > query.page_size
    shown = found[: query.page_size]
    return AuditPage(shown, int(shown[-1]["seq"]) if more and shown else None)


@dataclass(frozen=True)
class WitnessState:
    kind: str
    """``witness`` (a separate process) or ``local`` (the key in the home)."""
    reachable: bool
    key_fingerprint: str | None = None
    last_seq: int | None = None
    statements: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    at: str
    hash: str


@dataclass(frozen=True)
class VerifyStatus:
    report: VerifyReport | None
    problem: str | None
    """Why verification could not run (the witness unreachable…), else None."""
    witness: WitnessState
    last_checkpoint: Checkpoint | None = None
    notes: list[str] = field(default_factory=list)


def witness_state(settings: Settings) -> tuple[WitnessState, Checkpoint | None]:
    """What the witness says about itself and the last head it signed."""
    witness = open_witness(settings)
    try:
        info = witness.info()
        heads = [s for s in witness.journal() if isinstance(s, HeadStatement)]
        key = load_public_pem(str(info["public_key"]).encode("ascii"), "the witness's key")
        last = info.get("last") or {}
        state = WitnessState(
            kind=witness.kind,
            reachable=True,
            key_fingerprint=fingerprint(key),
            last_seq=last.get("seq") if isinstance(last, dict) else None,
            statements=int(info.get("statements") or 0),
        )
        head = max(heads, key=lambda s: s.seq) if heads else None
        checkpoint = Checkpoint(head.seq, head.at, head.hash) if head is not None else None
        return state, checkpoint
    except ModelyardError as exc:
        return WitnessState(kind=witness.kind, reachable=False, problem=exc.message), None
    finally:
        witness.close()


def verify_status(db: Database, settings: Settings) -> VerifyStatus:
    """``modelyard audit verify`` and the witness's state, for the verify page."""
    witness, checkpoint = witness_state(settings)
    try:
        report = verify(db, settings)
    except ModelyardError as exc:
        return VerifyStatus(None, exc.message, witness, checkpoint)
    return VerifyStatus(report, None, witness, checkpoint, list(report.notes))
