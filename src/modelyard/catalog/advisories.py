"""Advisories against model versions (a CVE in a tokenizer, a harmful-output finding…).

``block`` stops serving the version from the next request on (the gateway's alias falls back,
or the request gets 503 naming the advisory); ``warn`` serves it with a warning header.

modelyard raises one itself when an engine refuses to load a version whose bytes do not
match its digest (``integrity-…``) or whose signature does not verify (``signature-…``):
critical, ``block``, by ``modelyard`` (:func:`raise_load_refusal`). An admin withdraws it once
the stored file is restored (``modelyard store verify``) or the version re-signed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.lifecycle import aware
from modelyard.catalog.rows import find_version, ref_of
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.store.lifecycle_tables import AdvisoryRow
from modelyard.store.tables import utcnow

if TYPE_CHECKING:
    from modelyard.catalog.registry import Registry
    from modelyard.config import Settings
    from modelyard.store.database import Database

LOAD_REFUSAL_KINDS = ("integrity", "signature")
SYSTEM_ACTOR = "modelyard"

SEVERITIES = ("low", "medium", "high", "critical")
ACTIONS = ("block", "warn")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True)
class Advisory:
    id: str
    ref: str
    severity: str
    action: str
    summary: str
    created_by: str
    created_at: datetime
    withdrawn_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "severity": self.severity,
            "action": self.action,
            "summary": self.summary,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
            "active": self.active,
        }


def _record(row: AdvisoryRow) -> Advisory:
    return Advisory(
        row.advisory_id,
        row.model_ref,
        row.severity,
        row.action,
        row.summary,
        row.created_by,
        aware(row.created_at),
        aware(row.withdrawn_at) if row.withdrawn_at else None,
    )


def active_for(session: Session, version_ids: list[int]) -> dict[int, list[Advisory]]:
    """Active advisories per version id (one query)."""
    found: dict[int, list[Advisory]] = {vid: [] for vid in version_ids}
    rows = session.scalars(
        select(AdvisoryRow)
        .where(AdvisoryRow.version_id.in_(version_ids), AdvisoryRow.withdrawn_at.is_(None))
        .order_by(AdvisoryRow.id)
    )
    for row in rows:
        found[row.version_id].append(_record(row))
    return found


def validate(advisory_id: str, severity: str, action: str) -> None:
    if not _ID.match(advisory_id):
        raise InvalidInput(
            f"invalid advisory id {advisory_id!r}: letters, digits, '.', '_', ':', '-' "
            "(at most 64), e.g. CVE-2026-12345",
            param="id",
        )
    if severity not in SEVERITIES:
        raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}", param="severity")
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}", param="action")


class Advisories:
    """Add, withdraw and list advisories; adding and withdrawing are audited in the same
    transaction (``settings``: the registry's unless given)."""

    def __init__(self, registry: Registry, settings: Settings | None = None) -> None:
        self.db = registry.db
        self.settings = settings or registry.settings

    def _audit(self, session: Session, kind: str, actor: str, advisory: Advisory) -> None:
        append_event(session, self.db, self.settings, kind, actor, advisory.ref, advisory.to_json())

    @audited("advisory.add")
    def add(
        self,
        ref: str,
        advisory_id: str,
        *,
        severity: str,
        action: str,
        actor: str,
        summary: str = "",
    ) -> Advisory:
        severity, action = severity.lower(), action.lower()
        validate(advisory_id, severity, action)
        try:
            with self.db.session() as session:
                version = find_version(session, ref)
                row = AdvisoryRow(
                    advisory_id=advisory_id,
                    version_id=version.id,
                    model_ref=ref_of(version),
                    severity=severity,
                    action=action,
                    summary=summary,
                    created_by=actor,
                    created_at=utcnow(),
                )
                session.add(row)
                session.flush()
                advisory = _record(row)
                self._audit(session, "advisory.add", actor, advisory)
        except IntegrityError as exc:
            raise Conflict(f"advisory {advisory_id} is already recorded for {ref}") from exc
        return advisory

    @audited("advisory.withdraw")
    def withdraw(self, ref: str, advisory_id: str, *, actor: str) -> Advisory:
        with self.db.session() as session:
            version = find_version(session, ref)
            row = session.scalar(
                select(AdvisoryRow).where(
                    AdvisoryRow.version_id == version.id, AdvisoryRow.advisory_id == advisory_id
                )
            )
            if row is None or row.withdrawn_at is not None:
                raise NotFound(f"no active advisory {advisory_id} on {ref_of(version)}")
            row.withdrawn_at = utcnow()
            session.flush()
            advisory = _record(row)
            self._audit(session, "advisory.withdraw", actor, advisory)
        return advisory

    def list(self, ref: str | None = None, *, include_withdrawn: bool = False) -> list[Advisory]:
        with self.db.session() as session:
            query = select(AdvisoryRow).order_by(AdvisoryRow.id)
            if ref is not None:
                query = query.where(AdvisoryRow.version_id == find_version(session, ref).id)
            if not include_withdrawn:
                query = query.where(AdvisoryRow.withdrawn_at.is_(None))
            return [_record(row) for row in session.scalars(query)]


@audited("advisory.add")
def raise_load_refusal(
    db: Database, settings: Settings, ref: str, kind: str, summary: str, *, now: datetime
) -> Advisory:
    """The active ``kind`` advisory (``integrity`` or ``signature``) that blocks ``ref`` after
    a refused load: the one already raised (nothing recorded), or a new one (critical,
    block, by ``modelyard``), audited."""
    if kind not in LOAD_REFUSAL_KINDS:
        raise InvalidInput(f"unknown load refusal {kind!r}", param="kind")
    with db.session() as session:
        version = find_version(session, ref)
        active = session.scalar(
            select(AdvisoryRow)
            .where(
                AdvisoryRow.version_id == version.id,
                AdvisoryRow.advisory_id.startswith(f"{kind}-"),
                AdvisoryRow.withdrawn_at.is_(None),
            )
            .limit(1)
        )
        if active is not None:
            return _record(active)
        row = AdvisoryRow(
            advisory_id=f"{kind}-{now:%Y%m%dT%H%M%S%f}",
            version_id=version.id,
            model_ref=ref_of(version),
            severity="critical",
            action="block",
            summary=summary[:2000],
            created_by=SYSTEM_ACTOR,
            created_at=now,
        )
        session.add(row)
        session.flush()
        advisory = _record(row)
        append_event(
            session, db, settings, "advisory.add", SYSTEM_ACTOR, advisory.ref, advisory.to_json()
        )
    return advisory


def load_refusals(advisories: list[Advisory]) -> list[Advisory]:
    """The active advisories modelyard raised because a load was refused."""
    return [
        a
        for a in advisories
        if a.active and a.created_by == SYSTEM_ACTOR and a.id.split("-", 1)[0] in LOAD_REFUSAL_KINDS
    ]
