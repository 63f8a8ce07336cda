"""Lifecycle stages of a model version, the transitions allowed between them, and their record.

::

    registered → candidate → approved → production → deprecated → retired
                     ↑__________|  ↑________|  (back to candidate on a failed review)
                                          production ← deprecated (deprecation withdrawn)

A forward promotion may skip stages on the main line (``registered`` straight to
``production``): it is recorded as one transition per stage, all in one transaction, and
the policy gates of every stage on the way are checked first. Every transition records the
actor, time, reason, evidence (evaluation run ids) and the gate results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.catalog.rows import ref_of
from modelyard.errors import Conflict, InvalidInput
from modelyard.store.lifecycle_tables import StageTransitionRow, VersionStateRow
from modelyard.store.tables import ModelVersionRow, utcnow


class Stage(StrEnum):
    REGISTERED = "registered"
    CANDIDATE = "candidate"
    APPROVED = "approved"
    PRODUCTION = "production"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


MAIN_LINE: tuple[Stage, ...] = tuple(Stage)
EDGES: dict[Stage, frozenset[Stage]] = {
    Stage.REGISTERED: frozenset({Stage.CANDIDATE}),
    Stage.CANDIDATE: frozenset({Stage.APPROVED}),
    Stage.APPROVED: frozenset({Stage.PRODUCTION, Stage.CANDIDATE}),
    Stage.PRODUCTION: frozenset({Stage.DEPRECATED, Stage.CANDIDATE}),
    Stage.DEPRECATED: frozenset({Stage.RETIRED, Stage.PRODUCTION}),
    Stage.RETIRED: frozenset(),
}
SERVED: frozenset[Stage] = frozenset({Stage.PRODUCTION, Stage.DEPRECATED})
"""Stages every key may be served from; ``approved`` is served to pilot keys only."""


def parse_stage(text: str) -> Stage:
    try:
        return Stage(text.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"unknown stage {text!r}: one of {', '.join(s.value for s in Stage)}", param="stage"
        ) from None


def plan_path(current: Stage, target: Stage) -> list[Stage]:
    """The stages a version passes through from ``current`` to ``target`` (excluding current)."""
    if target == current:
        raise Conflict(f"already {current.value}")
    if target in EDGES[current]:
        return [target]
    here, there = MAIN_LINE.index(current), MAIN_LINE.index(target)
    if there > here and current != Stage.RETIRED:
        return list(MAIN_LINE[here + 1 : there + 1])
    allowed = ", ".join(sorted(s.value for s in EDGES[current])) or "none: retired is final"
    raise Conflict(f"cannot move from {current.value} to {target.value} (allowed: {allowed})")


@dataclass(frozen=True)
class StageInfo:
    stage: Stage
    since: datetime | None = None
    sunset_at: datetime | None = None
    replacement: str | None = None
    intended_use: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "since": self.since.isoformat() if self.since else None,
            "sunset_at": self.sunset_at.isoformat() if self.sunset_at else None,
            "replacement": self.replacement,
            "intended_use": self.intended_use,
        }


@dataclass(frozen=True)
class Transition:
    ref: str
    digest: str
    from_stage: str | None
    to_stage: str
    actor: str
    reason: str
    at: datetime
    evidence: tuple[str, ...] = ()
    gates: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "from": self.from_stage,
            "to": self.to_stage,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "evidence": list(self.evidence),
            "gates": list(self.gates),
        }


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _opt(value: datetime | None) -> datetime | None:
    return aware(value) if value is not None else None


def stage_info(row: VersionStateRow | None) -> StageInfo:
    """A version's stage from its state row (no row: ``registered``)."""
    if row is None:
        return StageInfo(Stage.REGISTERED)
    return StageInfo(
        Stage(row.stage),
        aware(row.updated_at),
        _opt(row.sunset_at),
        row.replacement,
        row.intended_use,
    )


def state_of(session: Session, version_id: int) -> StageInfo:
    return stage_info(session.get(VersionStateRow, version_id))


def states_of(session: Session, version_ids: list[int]) -> dict[int, StageInfo]:
    """Stage info for many versions in one query (missing rows are ``registered``)."""
    found = {
        row.version_id: row
        for row in session.scalars(
            select(VersionStateRow).where(VersionStateRow.version_id.in_(version_ids))
        )
    }
    return {vid: stage_info(found.get(vid)) for vid in version_ids}


def transition_record(row: StageTransitionRow) -> Transition:
    return Transition(
        ref=f"{row.model_name}@{row.model_version}",
        digest=row.model_digest,
        from_stage=row.from_stage,
        to_stage=row.to_stage,
        actor=row.actor,
        reason=row.reason,
        at=aware(row.created_at),
        evidence=tuple(row.evidence or ()),
        gates=tuple(row.gates or ()),
    )


def write_transition(
    session: Session,
    version: ModelVersionRow,
    to: Stage,
    *,
    actor: str,
    reason: str,
    evidence: tuple[str, ...] = (),
    gates: tuple[dict[str, Any], ...] = (),
    sunset_at: datetime | None = None,
    replacement: str | None = None,
    initial: bool = False,
) -> Transition:
    """Move ``version`` to stage ``to`` and append the transition (inside the caller's session)."""
    now = utcnow()
    state = session.get(VersionStateRow, version.id)
    before: str | None = None if initial else Stage.REGISTERED.value
    if state is None:
        state = VersionStateRow(version_id=version.id, stage=to.value, updated_at=now)
        session.add(state)
    else:
        before = state.stage
        state.stage = to.value
        state.updated_at = now
    if sunset_at is not None:
        state.sunset_at = sunset_at
    if replacement is not None:
        state.replacement = replacement
    if to == Stage.PRODUCTION:
        state.sunset_at = None
    record = StageTransitionRow(
        model_name=version.model.name,
        model_version=version.version,
        model_digest=version.digest,
        from_stage=before,
        to_stage=to.value,
        actor=actor,
        reason=reason,
        evidence=list(evidence),
        gates=list(gates),
        created_at=now,
    )
    session.add(record)
    session.flush()
    return Transition(
        ref=ref_of(version),
        digest=version.digest,
        from_stage=before,
        to_stage=to.value,
        actor=actor,
        reason=reason,
        at=now,
        evidence=evidence,
        gates=gates,
    )


def history_of(session: Session, name: str) -> list[Transition]:
    rows = session.scalars(
        select(StageTransitionRow)
        .where(StageTransitionRow.model_name == name)
        .order_by(StageTransitionRow.id)
    )
    return [transition_record(row) for row in rows]
