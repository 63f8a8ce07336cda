"""Aliases as a rollout tool: atomic moves, canary splits, a history to roll back along.

An alias points at one version and may send ``weight`` percent of its traffic to a second
(canary) version. Every change is one transaction that rewrites the alias, its canary and
appends an event with the state before and after; a request reads the alias and its canary
in one statement, so it sees either the old state or the new one, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.lifecycle import aware
from modelyard.catalog.names import validate_name
from modelyard.catalog.rows import find_version, ref_of
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.store.lifecycle_tables import AliasCanaryRow, AliasEventRow
from modelyard.store.tables import AliasRow, ModelRow, ModelVersionRow, utcnow

if TYPE_CHECKING:
    from modelyard.catalog.registry import Registry
    from modelyard.config import Settings


@dataclass(frozen=True)
class AliasState:
    name: str
    target: str
    canary: str | None = None
    weight: float | None = None
    """Percent of requests that go to ``canary``."""
    updated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "canary": self.canary,
            "canary_weight": self.weight,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass(frozen=True)
class AliasEvent:
    id: int
    alias: str
    action: str
    target: str | None
    canary: str | None
    weight: float | None
    previous_target: str | None
    previous_canary: str | None
    previous_weight: float | None
    actor: str
    reason: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "alias": self.alias,
            "action": self.action,
            "target": self.target,
            "canary": self.canary,
            "canary_weight": self.weight,
            "previous_target": self.previous_target,
            "previous_canary": self.previous_canary,
            "previous_weight": self.previous_weight,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


def _event(row: AliasEventRow) -> AliasEvent:
    return AliasEvent(
        row.id,
        row.alias,
        row.action,
        row.target,
        row.canary,
        row.canary_weight,
        row.previous_target,
        row.previous_canary,
        row.previous_weight,
        row.actor,
        row.reason,
        aware(row.created_at),
    )


def check_weight(weight: float | None, canary: str | None) -> None:
    if canary is None and weight is not None:
        raise InvalidInput("a canary weight needs a canary version (--canary NAME@N)")
    if canary is not None and (weight is None or not 0 < weight < 100):
        raise InvalidInput(
            "a canary weight is a percentage strictly between 0 and 100", param="weight"
        )


def current_state(session: Session, alias: str) -> AliasState | None:
    """The alias and its canary, read in one statement (one consistent snapshot)."""
    found = session.execute(
        select(AliasRow, AliasCanaryRow)
        .outerjoin(AliasCanaryRow, AliasCanaryRow.alias == AliasRow.name)
        .where(AliasRow.name == alias)
    ).first()
    if found is None:
        return None
    alias_row, canary_row = found
    target = session.get(ModelVersionRow, alias_row.version_id)
    if target is None:
        return None
    canary_ref = weight = None
    if canary_row is not None:
        canary_version = session.get(ModelVersionRow, canary_row.version_id)
        if canary_version is not None:
            canary_ref, weight = ref_of(canary_version), canary_row.weight
    return AliasState(alias, ref_of(target), canary_ref, weight, aware(alias_row.updated_at))


def move_alias(
    session: Session,
    alias: str,
    target: ModelVersionRow,
    *,
    canary: ModelVersionRow | None = None,
    weight: float | None = None,
    actor: str,
    reason: str = "",
    action: str = "set",
) -> AliasState:
    """Point ``alias`` at ``target`` (and optionally a canary) inside the caller's session."""
    validate_name(alias, what="alias")
    check_weight(weight, ref_of(canary) if canary is not None else None)
    if canary is not None and canary.id == target.id:
        raise InvalidInput("the canary must be a different version from the target")
    if session.scalar(select(ModelRow).where(ModelRow.name == alias)) is not None:
        raise Conflict(f"{alias!r} is already a model name; an alias needs its own name")
    before = current_state(session, alias)
    now = utcnow()
    row = session.get(AliasRow, alias)
    if row is None:
        session.add(AliasRow(name=alias, version_id=target.id, updated_at=now))
    else:
        row.version_id = target.id
        row.updated_at = now
    canary_row = session.get(AliasCanaryRow, alias)
    if canary is None and canary_row is not None:
        session.delete(canary_row)
    elif canary is not None and weight is not None:
        if canary_row is None:
            session.add(
                AliasCanaryRow(alias=alias, version_id=canary.id, weight=weight, updated_at=now)
            )
        else:
            canary_row.version_id, canary_row.weight, canary_row.updated_at = canary.id, weight, now
    state = AliasState(
        alias, ref_of(target), ref_of(canary) if canary is not None else None, weight, now
    )
    _record(session, action, state, before, actor, reason, now)
    return state


def remove_alias(session: Session, alias: str, *, actor: str, reason: str = "") -> None:
    before = current_state(session, alias)
    row = session.get(AliasRow, alias)
    if row is None or before is None:
        raise NotFound(f"no alias named {alias!r}")
    canary_row = session.get(AliasCanaryRow, alias)
    if canary_row is not None:
        session.delete(canary_row)
    session.delete(row)
    _record(session, "remove", AliasState(alias, ""), before, actor, reason, utcnow())


def _record(
    session: Session,
    action: str,
    after: AliasState,
    before: AliasState | None,
    actor: str,
    reason: str,
    now: datetime,
) -> None:
    session.add(
        AliasEventRow(
            alias=after.name,
            action=action,
            target=after.target or None,
            canary=after.canary,
            canary_weight=after.weight,
            previous_target=before.target if before else None,
            previous_canary=before.canary if before else None,
            previous_weight=before.weight if before else None,
            actor=actor,
            reason=reason,
            created_at=now,
        )
    )
    session.flush()


def events_of(session: Session, alias: str) -> list[AliasEvent]:
    """The alias's changes, oldest first."""
    rows = session.scalars(
        select(AliasEventRow).where(AliasEventRow.alias == alias).order_by(AliasEventRow.id)
    )
    return [_event(row) for row in rows]


def rollback_target(events: list[AliasEvent]) -> AliasEvent:
    """The change a rollback undoes: the newest ``set`` not already undone by a rollback."""
    undone = 0
    for event in reversed(events):
        if event.action == "remove":
            break
        if event.action == "rollback":
            undone += 1
        elif undone:
            undone -= 1
        else:
            if event.previous_target is None:
                break
            return event
    raise Conflict("nothing to roll back to: the alias has no earlier target")


class Aliases:
    """The alias operations the CLI and the admin API offer; each change is also audited."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.db = registry.db
        self.settings = settings

    def _audit(
        self, session: Session, kind: str, actor: str, alias: str, details: dict[str, Any]
    ) -> None:
        append_event(session, self.db, self.settings, kind, actor, f"alias:{alias}", details)

    @audited("alias.set")
    def set(
        self,
        alias: str,
        ref: str,
        *,
        actor: str,
        canary: str | None = None,
        weight: float | None = None,
        reason: str = "",
    ) -> AliasState:
        check_weight(weight, canary)
        with self.db.session() as session:
            target = find_version(session, ref)
            canary_row = find_version(session, canary) if canary is not None else None
            before = current_state(session, alias)
            state = move_alias(
                session, alias, target, canary=canary_row, weight=weight, actor=actor, reason=reason
            )
            self._audit(session, "alias.set", actor, alias, _change(before, state, reason))
        return state

    @audited("alias.rollback")
    def rollback(self, alias: str, *, actor: str, reason: str = "") -> AliasState:
        with self.db.session() as session:
            if current_state(session, alias) is None:
                raise NotFound(f"no alias named {alias!r}")
            undo = rollback_target(events_of(session, alias))
            assert undo.previous_target is not None
            target = find_version(session, undo.previous_target)
            canary = find_version(session, undo.previous_canary) if undo.previous_canary else None
            before = current_state(session, alias)
            reason = reason or f"rollback of change #{undo.id}"
            state = move_alias(
                session,
                alias,
                target,
                canary=canary,
                weight=undo.previous_weight if canary is not None else None,
                actor=actor,
                reason=reason,
                action="rollback",
            )
            self._audit(session, "alias.rollback", actor, alias, _change(before, state, reason))
        return state

    def show(self, alias: str) -> tuple[AliasState, list[AliasEvent]]:
        with self.db.session() as session:
            state = current_state(session, alias)
            if state is None:
                raise NotFound(f"no alias named {alias!r}")
            return state, events_of(session, alias)

    def history(self, alias: str) -> list[AliasEvent]:
        with self.db.session() as session:
            return events_of(session, alias)

    def list(self) -> list[AliasState]:
        with self.db.session() as session:
            names = session.scalars(select(AliasRow.name).order_by(AliasRow.name))
            states = [current_state(session, name) for name in list(names)]
            return [s for s in states if s is not None]

    @audited("alias.remove")
    def remove(self, alias: str, *, actor: str, reason: str = "") -> None:
        with self.db.session() as session:
            before = current_state(session, alias)
            remove_alias(session, alias, actor=actor, reason=reason)
            self._audit(session, "alias.remove", actor, alias, _change(before, None, reason))


def _change(before: AliasState | None, after: AliasState | None, reason: str) -> dict[str, Any]:
    return {
        "before": before.to_json() if before else None,
        "after": after.to_json() if after else None,
        "reason": reason,
    }
