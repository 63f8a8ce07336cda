"""``/console/aliases``: aliases with their targets and canaries; set or move an alias,
change the canary weight, roll back to the previous target (the Aliases service records
each change in the alias history and the audit log)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from modelyard.catalog.aliases import AliasState
from modelyard.errors import ModelyardError
from modelyard.operators.principal import Operator
from modelyard.web.auth import requires
from modelyard.web.forms import number, optional
from modelyard.web.render import form_error, page, path_part, redirect
from modelyard.web.services import aliases_of
from modelyard.web.state import gateway_of

router = APIRouter()
LIST_TEMPLATE = "aliases/list.html"
DETAIL_TEMPLATE = "aliases/detail.html"


def _list_context(request: Request) -> dict[str, Any]:
    refs = [v.ref for v in gateway_of(request).registry.list_versions()]
    return {"aliases": aliases_of(request).list(), "refs": refs}


@router.get("/console/aliases")
async def aliases(request: Request, _: Operator = Depends(requires("catalog.read"))) -> Response:
    context = await asyncio.to_thread(_list_context, request)
    return page(request, LIST_TEMPLATE, **context)


@router.post("/console/aliases")
async def set_alias(
    request: Request,
    alias: str = Form(""),
    target: str = Form(""),
    canary: str = Form(""),
    weight: str = Form(""),
    reason: str = Form(""),
    operator: Operator = Depends(requires("aliases.change")),
) -> Response:
    values = {
        "alias": alias,
        "target": target,
        "canary": canary,
        "weight": weight,
        "reason": reason,
    }
    try:
        state = await asyncio.to_thread(
            aliases_of(request).set,
            alias.strip(),
            target.strip(),
            actor=operator.actor,
            canary=optional(canary),
            weight=number(weight, "weight"),
            reason=reason.strip(),
        )
    except ModelyardError as exc:
        context = await asyncio.to_thread(_list_context, request)
        return form_error(request, LIST_TEMPLATE, exc, values=values, **context)
    return redirect(request, _href(state), flash=f"{state.name} → {_describe(state)}.")


def _href(state: AliasState) -> str:
    return f"/console/aliases/{path_part(state.name)}"


def _describe(state: AliasState) -> str:
    if state.canary:
        return f"{state.target}, canary {state.canary} at {state.weight:g}%"
    return state.target


def _detail_context(request: Request, name: str) -> dict[str, Any]:
    state, events = aliases_of(request).show(name)
    refs = [v.ref for v in gateway_of(request).registry.list_versions()]
    return {"alias": state, "events": list(reversed(events)), "refs": refs}


async def _detail_page(
    request: Request,
    name: str,
    *,
    error: ModelyardError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    context = await asyncio.to_thread(_detail_context, request, name)
    if error is not None:
        return form_error(request, DETAIL_TEMPLATE, error, values=values or {}, **context)
    return page(request, DETAIL_TEMPLATE, **context)


@router.get("/console/aliases/{name}")
async def alias_detail(
    request: Request, name: str, _: Operator = Depends(requires("catalog.read"))
) -> Response:
    return await _detail_page(request, name)


@router.post("/console/aliases/{name}/canary")
async def set_canary(
    request: Request,
    name: str,
    canary: str = Form(""),
    weight: str = Form(""),
    reason: str = Form(""),
    operator: Operator = Depends(requires("aliases.change")),
) -> Response:
    """Set the canary and its weight (an empty canary removes it); the target stays."""
    values = {"canary": canary, "weight": weight, "reason": reason}
    service = aliases_of(request)
    try:
        current, _ = await asyncio.to_thread(service.show, name)
        chosen = optional(canary)
        state = await asyncio.to_thread(
            service.set,
            name,
            current.target,
            actor=operator.actor,
            canary=chosen,
            weight=number(weight, "weight") if chosen else None,
            reason=reason.strip(),
        )
    except ModelyardError as exc:
        return await _detail_page(request, name, error=exc, values=values)
    return redirect(request, _href(state), flash=f"{state.name} → {_describe(state)}.")


@router.post("/console/aliases/{name}/rollback")
async def rollback(
    request: Request,
    name: str,
    reason: str = Form(""),
    operator: Operator = Depends(requires("aliases.change")),
) -> Response:
    try:
        state = await asyncio.to_thread(
            aliases_of(request).rollback, name, actor=operator.actor, reason=reason.strip()
        )
    except ModelyardError as exc:
        return await _detail_page(request, name, error=exc, values={"rollback_reason": reason})
    return redirect(request, _href(state), flash=f"Rolled back: {state.name} → {_describe(state)}.")
