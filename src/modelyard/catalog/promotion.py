"""Promote a version through the lifecycle, with the policy's gates checked first.

A refused promotion changes nothing. An allowed one writes one transition per stage passed
and its audit-log event in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.lifecycle import (
    Stage,
    StageInfo,
    Transition,
    history_of,
    parse_stage,
    plan_path,
    state_of,
    states_of,
    write_transition,
)
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.catalog.rows import find_version, ref_of, versions_of
from modelyard.config import Settings
from modelyard.errors import Conflict, Forbidden, InvalidInput, NotFound
from modelyard.governance.policy import Policy
from modelyard.governance.policy_gates import GateResult, PolicyReport, check_gates
from modelyard.store.lifecycle_tables import AliasCanaryRow, VersionStateRow
from modelyard.store.tables import AliasRow, ModelRow, ModelVersionRow, utcnow


@dataclass(frozen=True)
class Promotion:
    report: PolicyReport
    transitions: tuple[Transition, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.report.to_json(),
            "transitions": [t.to_json() for t in self.transitions],
        }


class Lifecycle:
    """Stages, policy checks, promotions and history of model versions."""

    def __init__(self, registry: Registry, settings: Settings, policy: Policy) -> None:
        self.registry = registry
        self.settings = settings
        self.policy = policy

    def stage(self, ref: str) -> tuple[ModelVersion, StageInfo]:
        version = self.registry.get(ref)
        with self.registry.db.session() as session:
            return version, state_of(session, find_version(session, version.ref).id)

    def stages(self) -> dict[str, StageInfo]:
        """The stage of every version, by ``NAME@N``."""
        with self.registry.db.session() as session:
            rows = list(session.scalars(select(ModelVersionRow)))
            infos = states_of(session, [row.id for row in rows])
            return {ref_of(row): infos[row.id] for row in rows}

    def check(
        self,
        ref: str,
        to: Stage | str,
        *,
        actor: str,
        proposer: str | None = None,
        override_no_policy: bool = False,
    ) -> PolicyReport:
        """Every gate for moving ``ref`` to ``to`` with ``actor`` approving (and
        ``proposer`` having proposed it, for the four-eyes gate)."""
        target = parse_stage(to) if isinstance(to, str) else to
        version, info = self.stage(ref)
        path = plan_path(info.stage, target)
        results = _policy_gate(self.policy, path, actor, override_no_policy)
        results += check_gates(
            self.policy,
            version,
            path,
            actor=actor,
            db=self.registry.db,
            blobs=self.registry.blobs,
            proposer=proposer,
        )
        return PolicyReport(
            ref=version.ref,
            current=info.stage.value,
            target=target.value,
            path=tuple(s.value for s in path),
            actor=actor,
            policy_source=self.policy.source,
            results=tuple(results),
        )

    @audited("lifecycle.promote")
    def promote(
        self,
        ref: str,
        to: Stage | str,
        *,
        actor: str,
        reason: str,
        sunset_at: datetime | None = None,
        replacement: str | None = None,
        override_no_policy: bool = False,
        proposer: str | None = None,
        also: Callable[[Session, PolicyReport], None] | None = None,
    ) -> Promotion:
        """Move ``ref`` to ``to`` if every gate passes; ``also`` runs in the same transaction
        (an approved proposal marks itself there)."""
        if not reason.strip():
            raise InvalidInput("a promotion needs a reason (--reason)", param="reason")
        report = self.check(
            ref, to, actor=actor, proposer=proposer, override_no_policy=override_no_policy
        )
        if not report.allowed:
            source = self.policy.source or "built-in"
            raise Forbidden(
                f"promotion of {report.ref} to {report.target} refused by policy ({source}): "
                f"{report.summary()}",
                code="policy_refused",
            )
        target = Stage(report.target)
        if sunset_at is not None and Stage.DEPRECATED not in [Stage(s) for s in report.path]:
            raise InvalidInput("--sunset applies to a deprecation (--to deprecated)")
        transitions = self._write(report, actor, reason, sunset_at, replacement, target, also=also)
        return Promotion(report, transitions)

    def _write(
        self,
        report: PolicyReport,
        actor: str,
        reason: str,
        sunset_at: datetime | None,
        replacement: str | None,
        target: Stage,
        *,
        also: Callable[[Session, PolicyReport], None] | None = None,
    ) -> tuple[Transition, ...]:
        with self.registry.db.session() as session:
            row = find_version(session, report.ref)
            locked = session.scalar(
                select(VersionStateRow.stage)
                .where(VersionStateRow.version_id == row.id)
                .with_for_update()
            )
            if (locked or Stage.REGISTERED.value) != report.current:
                raise Conflict(f"{report.ref} changed stage meanwhile; check it again")
            if replacement is not None:
                _check_replacement(session, replacement, report.ref)
            if target == Stage.RETIRED:
                _refuse_if_aliased(session, row.id, report.ref)
            written = []
            for stage in (Stage(s) for s in report.path):
                gates = tuple(r.to_json() for r in report.results if str(r.stage) == stage)
                evidence = tuple(
                    e for r in report.results if str(r.stage) == stage for e in r.evidence
                )
                written.append(
                    write_transition(
                        session,
                        row,
                        stage,
                        actor=actor,
                        reason=reason,
                        evidence=evidence,
                        gates=gates,
                        sunset_at=sunset_at if stage == Stage.DEPRECATED else None,
                        replacement=replacement,
                    )
                )
            append_event(
                session,
                self.registry.db,
                self.settings,
                "lifecycle.promote",
                actor,
                report.ref,
                {
                    "from": report.current,
                    "to": report.target,
                    "path": list(report.path),
                    "reason": reason,
                    "evidence": list(report.evidence),
                    "gates": [r.to_json() for r in report.results],
                    "policy": report.policy_source,
                    "policy_sha256": self.policy.sha256,
                    "override_no_policy": any(
                        r.gate == "policy" and r.status == "passed" for r in report.results
                    ),
                },
            )
            if also is not None:
                also(session, report)
            return tuple(written)

    def history(self, name: str) -> list[Transition]:
        with self.registry.db.session() as session:
            versions_of(session, name)
            return history_of(session, name)

    @audited("model.intended_use")
    def set_intended_use(self, ref: str, text: str, *, actor: str) -> None:
        """Set the intended-use text of the version's model card."""
        with self.registry.db.session() as session:
            row = find_version(session, ref)
            state = session.get(VersionStateRow, row.id)
            if state is None:
                state = VersionStateRow(
                    version_id=row.id, stage=Stage.REGISTERED.value, updated_at=utcnow()
                )
                session.add(state)
            before = state.intended_use
            state.intended_use = text
            session.flush()
            append_event(
                session,
                self.registry.db,
                self.settings,
                "model.intended_use",
                actor,
                ref_of(row),
                {"before": before, "after": text},
            )


GOVERNED_STAGES = (Stage.APPROVED, Stage.PRODUCTION)
"""Stages a version is served from: moving into one with no policy file needs an override."""


def _policy_gate(policy: Policy, path: list[Stage], actor: str, override: bool) -> list[GateResult]:
    """With no policy file, a move into a served stage fails unless explicitly overridden;
    the override passes this gate and is recorded with the promotion."""
    if not policy.missing:
        return []
    served = [s for s in path if s in GOVERNED_STAGES]
    if not served:
        return []
    if override:
        return [GateResult("policy", served[0], "passed", f"no policy file: overridden by {actor}")]
    return [
        GateResult(
            "policy",
            served[0],
            "failed",
            "no policy file in the home (modelyard.toml): write one, or pass "
            "--override-no-policy to promote ungoverned (recorded in the audit log)",
        )
    ]


@audited("lifecycle.place")
def place(
    registry: Registry,
    ref: str,
    to: Stage,
    *,
    actor: str,
    reason: str,
    sunset_at: datetime | None = None,
    replacement: str | None = None,
) -> list[Transition]:
    """Put a version at a stage without policy gates (the bundled models): still recorded
    as transitions with the reason given, and in the audit log. A version already at ``to``
    is left alone and nothing is recorded."""
    with registry.db.session() as session:
        row = find_version(session, ref)
        current = state_of(session, row.id).stage
        if current == to:
            return []
        path = plan_path(current, to) if _forward_or_edge(current, to) else [to]
        written = [
            write_transition(
                session,
                row,
                stage,
                actor=actor,
                reason=reason,
                sunset_at=sunset_at if stage == Stage.DEPRECATED else None,
                replacement=replacement,
            )
            for stage in path
        ]
        append_event(
            session,
            registry.db,
            registry.settings,
            "lifecycle.place",
            actor,
            written[-1].ref,
            {
                "from": current.value,
                "to": to.value,
                "path": [s.value for s in path],
                "reason": reason,
            },
        )
    return written


def _forward_or_edge(current: Stage, to: Stage) -> bool:
    try:
        plan_path(current, to)
    except Conflict:
        return False
    return True


def _check_replacement(session: Session, replacement: str, ref: str) -> None:
    if session.get(AliasRow, replacement) is not None:
        return
    if session.scalar(select(ModelRow).where(ModelRow.name == replacement)) is not None:
        return
    raise NotFound(
        f"replacement {replacement!r} for {ref} is neither an alias nor a model name",
        param="replacement",
    )


def _refuse_if_aliased(session: Session, version_id: int, ref: str) -> None:
    names = list(session.scalars(select(AliasRow.name).where(AliasRow.version_id == version_id)))
    names += list(
        session.scalars(select(AliasCanaryRow.alias).where(AliasCanaryRow.version_id == version_id))
    )
    if names:
        raise Conflict(
            f"{ref} is still the target of alias {', '.join(sorted(names))}; "
            "move the alias before retiring it"
        )
