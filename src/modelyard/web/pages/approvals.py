"""``/console/approvals``: the inbox of proposed promotions; a proposal's page shows its
policy gates as they stand for the viewing operator (four-eyes included), with links to the
evidence, and takes the approval or rejection with a reason."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from modelyard.errors import Forbidden, ModelyardError
from modelyard.operators.principal import Operator, real_identity
from modelyard.web.auth import requires
from modelyard.web.render import form_error, page, redirect
from modelyard.web.services import proposals_of

router = APIRouter()
DETAIL_TEMPLATE = "approvals/detail.html"
DECIDED_SHOWN = 20


@router.get("/console/approvals")
async def inbox(request: Request, _: Operator = Depends(requires("catalog.read"))) -> Response:
    proposals = proposals_of(request)
    pending = await asyncio.to_thread(proposals.pending)
    decided = await asyncio.to_thread(proposals.list, limit=DECIDED_SHOWN + len(pending))
    recent = [p for p in decided if p.status != "pending"][:DECIDED_SHOWN]
    return page(request, "approvals/inbox.html", pending=pending, recent=recent)


def _detail(request: Request, proposal_id: int, operator: Operator) -> dict[str, Any]:
    proposals = proposals_of(request)
    proposal = proposals.get(proposal_id)
    report = None
    check_error = None
    if proposal.status == "pending":
        try:
            report = proposals.check(proposal_id, actor=operator.actor)
        except ModelyardError as exc:  # e.g. the version moved on: shown, not a crash
            check_error = exc.message
    return {"proposal": proposal, "report": report, "check_error": check_error}


async def _detail_page(
    request: Request,
    proposal_id: int,
    operator: Operator,
    *,
    error: ModelyardError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    context = await asyncio.to_thread(_detail, request, proposal_id, operator)
    if error is not None:
        return form_error(request, DETAIL_TEMPLATE, error, values=values or {}, **context)
    return page(request, DETAIL_TEMPLATE, **context)


@router.get("/console/approvals/{proposal_id}")
async def detail(
    request: Request, proposal_id: int, operator: Operator = Depends(requires("catalog.read"))
) -> Response:
    return await _detail_page(request, proposal_id, operator)


@router.post("/console/approvals/{proposal_id}/approve")
async def approve(
    request: Request,
    proposal_id: int,
    reason: str = Form(""),
    operator: Operator = Depends(requires("lifecycle.promote")),
) -> Response:
    proposals = proposals_of(request)
    try:
        promotion = await asyncio.to_thread(
            proposals.approve, proposal_id, actor=operator.actor, reason=reason
        )
    except ModelyardError as exc:
        values = {"approve_reason": reason}
        return await _detail_page(request, proposal_id, operator, error=exc, values=values)
    report = promotion.report
    return redirect(
        request,
        f"/console/approvals/{proposal_id}",
        flash=f"Approved: {report.ref} is now {report.target}.",
    )


@router.post("/console/approvals/{proposal_id}/reject")
async def reject(
    request: Request,
    proposal_id: int,
    reason: str = Form(""),
    operator: Operator = Depends(requires("lifecycle.promote")),
) -> Response:
    proposals = proposals_of(request)
    try:
        proposal = await asyncio.to_thread(
            proposals.reject, proposal_id, actor=operator.actor, reason=reason
        )
    except ModelyardError as exc:
        values = {"reject_reason": reason}
        return await _detail_page(request, proposal_id, operator, error=exc, values=values)
    return redirect(
        request,
        f"/console/approvals/{proposal_id}",
        flash=f"Proposal #{proposal.id} {proposal.status}.",
    )


@router.post("/console/approvals/{proposal_id}/withdraw")
async def withdraw(
    request: Request,
    proposal_id: int,
    reason: str = Form(""),
    operator: Operator = Depends(requires("lifecycle.propose")),
) -> Response:
    """The proposer takes their own proposal back (recorded as ``withdrawn``)."""
    proposals = proposals_of(request)
    try:
        proposal = await asyncio.to_thread(proposals.get, proposal_id)
        if real_identity(proposal.proposer) != real_identity(operator.actor):
            raise Forbidden(
                f"only {proposal.proposer}, who proposed #{proposal_id}, may withdraw it",
                code="not_proposer",
            )
        proposal = await asyncio.to_thread(
            proposals.reject, proposal_id, actor=operator.actor, reason=reason
        )
    except ModelyardError as exc:
        values = {"withdraw_reason": reason}
        return await _detail_page(request, proposal_id, operator, error=exc, values=values)
    return redirect(
        request, f"/console/approvals/{proposal_id}", flash=f"Proposal #{proposal.id} withdrawn."
    )
