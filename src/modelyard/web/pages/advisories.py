"""``/console/advisories``: advisories against versions (a ``block`` one stops serving
them); raise and withdraw through the Advisories service, which audits both."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from modelyard.catalog.advisories import ACTIONS, SEVERITIES
from modelyard.errors import ModelyardError
from modelyard.operators.principal import Operator
from modelyard.web.auth import requires
from modelyard.web.render import form_error, page, redirect
from modelyard.web.services import advisories_of
from modelyard.web.state import gateway_of

router = APIRouter()
TEMPLATE = "advisories/list.html"


def _context(request: Request, include_withdrawn: bool) -> dict[str, Any]:
    return {
        "advisories": advisories_of(request).list(include_withdrawn=include_withdrawn),
        "include_withdrawn": include_withdrawn,
        "refs": [v.ref for v in gateway_of(request).registry.list_versions()],
        "severities": SEVERITIES,
        "actions": ACTIONS,
    }


@router.get("/console/advisories")
async def advisories(
    request: Request,
    all: bool = False,
    ref: str = "",
    _: Operator = Depends(requires("catalog.read")),
) -> Response:
    context = await asyncio.to_thread(_context, request, all)
    values = {"ref": ref} if ref else {}
    return page(request, TEMPLATE, values=values, **context)


async def _with_error(request: Request, exc: ModelyardError, values: dict[str, str]) -> Response:
    context = await asyncio.to_thread(_context, request, False)
    return form_error(request, TEMPLATE, exc, values=values, **context)


@router.post("/console/advisories")
async def raise_advisory(
    request: Request,
    ref: str = Form(""),
    advisory_id: str = Form(""),
    severity: str = Form(""),
    action: str = Form(""),
    summary: str = Form(""),
    operator: Operator = Depends(requires("advisories.change")),
) -> Response:
    values = {
        "ref": ref,
        "advisory_id": advisory_id,
        "severity": severity,
        "action": action,
        "summary": summary,
    }
    try:
        advisory = await asyncio.to_thread(
            advisories_of(request).add,
            ref.strip(),
            advisory_id.strip(),
            severity=severity,
            action=action,
            actor=operator.actor,
            summary=summary.strip(),
        )
    except ModelyardError as exc:
        return await _with_error(request, exc, values)
    return redirect(
        request,
        "/console/advisories",
        flash=f"Advisory {advisory.id} raised against {advisory.ref} ({advisory.action}).",
    )


@router.post("/console/advisories/withdraw")
async def withdraw_advisory(
    request: Request,
    ref: str = Form(""),
    advisory_id: str = Form(""),
    operator: Operator = Depends(requires("advisories.change")),
) -> Response:
    try:
        advisory = await asyncio.to_thread(
            advisories_of(request).withdraw, ref.strip(), advisory_id.strip(), actor=operator.actor
        )
    except ModelyardError as exc:
        return await _with_error(request, exc, {})
    return redirect(
        request,
        "/console/advisories",
        flash=f"Advisory {advisory.id} on {advisory.ref} withdrawn.",
    )
