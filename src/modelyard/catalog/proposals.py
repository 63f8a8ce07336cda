"""Promotions proposed by one person and approved (or rejected) by another.

Four-eyes in practice: an operator proposes ``NAME@N → stage`` with a reason; the proposal
waits in the approvals inbox (``modelyard approvals``, the console's Approvals page); an
approver — never the proposer, never a maker of the version — approves it, and the promotion
runs with every policy gate checked for that approver and that proposer. The approval, the
transitions and both audit records commit in one transaction. The proposal pins the bytes
(the digest) and the stage it was made from: if either changed meanwhile, it cannot be
approved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.lifecycle import Stage, parse_stage, plan_path
from modelyard.catalog.promotion import Lifecycle, Promotion
from modelyard.catalog.rows import find_version
from modelyard.errors import Conflict, Forbidden, InvalidInput, NotFound
from modelyard.governance.policy_gates import PolicyReport
from modelyard.operators.principal import real_identity
from modelyard.store.operator_tables import PromotionRequestRow
from modelyard.store.tables import utcnow


@dataclass(frozen=True)
class Proposal:
    id: int
    ref: str
    digest: str
    from_stage: str
    to_stage: str
    proposer: str
    reason: str
    status: str
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "digest": self.digest,
            "from": self.from_stage,
            "to": self.to_stage,
            "proposer": self.proposer,
            "reason": self.reason,
            "status": self.status,
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "created_at": self.created_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }


def _proposal(row: PromotionRequestRow) -> Proposal:
    return Proposal(
        id=row.id,
        ref=f"{row.model_name}@{row.model_version}",
        digest=row.model_digest,
        from_stage=row.from_stage,
        to_stage=row.to_stage,
        proposer=row.proposer,
        reason=row.reason,
        status=row.status,
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        created_at=_aware(row.created_at),
        decided_at=_aware(row.decided_at) if row.decided_at else None,
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _reason(reason: str, what: str) -> str:
    text = reason.strip()
    if not text:
        raise InvalidInput(f"{what} needs a reason (--reason)", param="reason")
    if len(text) > 2000:
        raise InvalidInput("a reason may have at most 2000 characters", param="reason")
    return text


class Proposals:
    """The approvals inbox: propose, list, check, approve, reject."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.db = lifecycle.registry.db
        self.settings = lifecycle.settings

    def _row(self, session: Session, proposal_id: int) -> PromotionRequestRow:
        row = session.get(PromotionRequestRow, proposal_id)
        if row is None:
            raise NotFound(f"no proposal #{proposal_id}", param="id")
        return row

    @audited("lifecycle.propose")
    def propose(self, ref: str, to: Stage | str, *, actor: str, reason: str) -> Proposal:
        target = parse_stage(to) if isinstance(to, str) else to
        text = _reason(reason, "a proposal")
        version, info = self.lifecycle.stage(ref)
        plan_path(info.stage, target)  # refuses a move the lifecycle does not allow
        with self.db.session() as session:
            open_one = session.scalars(
                select(PromotionRequestRow.id).where(
                    PromotionRequestRow.version_id == find_version(session, version.ref).id,
                    PromotionRequestRow.to_stage == target.value,
                    PromotionRequestRow.status == "pending",
                )
            ).first()
            if open_one is not None:
                raise Conflict(f"{version.ref} → {target.value} is already proposed (#{open_one})")
            row = PromotionRequestRow(
                version_id=find_version(session, version.ref).id,
                model_name=version.name,
                model_version=version.version,
                model_digest=version.digest,
                from_stage=info.stage.value,
                to_stage=target.value,
                proposer=actor,
                reason=text,
                status="pending",
                gates=[],
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            append_event(
                session,
                self.db,
                self.settings,
                "lifecycle.propose",
                actor,
                version.ref,
                {"proposal": row.id, "from": row.from_stage, "to": row.to_stage, "reason": text},
            )
            return _proposal(row)

    def pending(self) -> list[Proposal]:
        return self.list(status="pending")

    def list(self, *, status: str | None = None, limit: int = 200) -> list[Proposal]:
        with self.db.session() as session:
            query = select(PromotionRequestRow).order_by(PromotionRequestRow.id.desc())
            if status is not None:
                query = query.where(PromotionRequestRow.status == status)
            return [_proposal(r) for r in session.scalars(query.limit(limit))]

    def get(self, proposal_id: int) -> Proposal:
        with self.db.session() as session:
            return _proposal(self._row(session, proposal_id))

    def check(self, proposal_id: int, *, actor: str) -> PolicyReport:
        """The gates as they stand for ``actor`` approving this proposal."""
        proposal = self.get(proposal_id)
        return self.lifecycle.check(
            proposal.ref, proposal.to_stage, actor=actor, proposer=proposal.proposer
        )

    def _still_valid(self, proposal: Proposal) -> None:
        if proposal.status != "pending":
            raise Conflict(f"proposal #{proposal.id} is already {proposal.status}")
        version, info = self.lifecycle.stage(proposal.ref)
        if version.digest != proposal.digest:
            raise Conflict(f"{proposal.ref} is not the version that was proposed")
        if info.stage.value != proposal.from_stage:
            raise Conflict(
                f"{proposal.ref} moved to {info.stage.value} since it was proposed "
                f"from {proposal.from_stage}; propose it again"
            )

    @audited("lifecycle.promote", "lifecycle.approve")
    def approve(self, proposal_id: int, *, actor: str, reason: str) -> Promotion:
        """Promote as proposed, with ``actor`` as the approver; refused (nothing changes)
        when ``actor`` proposed it or when any gate does not pass."""
        text = _reason(reason, "an approval")
        proposal = self.get(proposal_id)
        self._still_valid(proposal)
        if real_identity(actor) == real_identity(proposal.proposer):
            raise Forbidden(
                f"{actor} proposed #{proposal.id} and cannot approve it; a second operator must",
                code="own_proposal",
            )

        def mark(session: Session, report: PolicyReport) -> None:
            row = self._row(session, proposal_id)
            if row.status != "pending":
                raise Conflict(f"proposal #{proposal_id} was decided meanwhile")
            row.status = "approved"
            row.decided_by = actor
            row.decision_reason = text
            row.decided_at = utcnow()
            row.gates = [r.to_json() for r in report.results]
            append_event(
                session,
                self.db,
                self.settings,
                "lifecycle.approve",
                actor,
                proposal.ref,
                {"proposal": proposal.id, "proposer": proposal.proposer, "reason": text},
            )

        return self.lifecycle.promote(
            proposal.ref,
            proposal.to_stage,
            actor=actor,
            reason=f"{proposal.reason} (proposed by {proposal.proposer}; approved: {text})",
            proposer=proposal.proposer,
            also=mark,
        )

    @audited("lifecycle.reject")
    def reject(self, proposal_id: int, *, actor: str, reason: str) -> Proposal:
        """Close a proposal without promoting; the proposer may withdraw their own."""
        text = _reason(reason, "a rejection")
        with self.db.session() as session:
            row = self._row(session, proposal_id)
            if row.status != "pending":
                raise Conflict(f"proposal #{proposal_id} is already {row.status}")
            own = real_identity(actor) == real_identity(row.proposer)
            row.status = "withdrawn" if own else "rejected"
            row.decided_by = actor
            row.decision_reason = text
            row.decided_at = utcnow()
            append_event(
                session,
                self.db,
                self.settings,
                "lifecycle.reject",
                actor,
                f"{row.model_name}@{row.model_version}",
                {
                    "proposal": row.id,
                    "proposer": row.proposer,
                    "status": row.status,
                    "reason": text,
                },
            )
            return _proposal(row)
