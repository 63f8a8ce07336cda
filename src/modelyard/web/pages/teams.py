"""``/console/teams``: list, create, change scope / limits / budgets / PII policy, delete.

The same :class:`~modelyard.governance.teams.Teams` service as ``modelyard teams`` and
``/admin/teams``, with the operator as actor: the service writes ``team.*`` audit records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from modelyard.errors import InvalidInput, UserError
from modelyard.governance.key_admin import describe_keys
from modelyard.governance.teams import Team, Teams, check_team_name
from modelyard.operators.principal import Operator
from modelyard.web.auth import csrf_checked, requires
from modelyard.web.pages.scope_form import (
    form_values,
    limits_summary,
    parse_scope,
    scope_choices,
    scope_summary,
    scope_values,
)
from modelyard.web.render import form_error, page, redirect
from modelyard.web.state import gateway_of

router = APIRouter()
MANAGE = "teams.manage"


@dataclass(frozen=True)
class TeamView:
    name: str
    created_at: str
    scope: str
    limits: str
    pii: str
    keys: tuple[str, ...]


def _teams(request: Request) -> Teams:
    gateway = gateway_of(request)
    return Teams(gateway.db, gateway.settings)


def _members(request: Request) -> dict[str, list[str]]:
    """Key names per team."""
    gateway = gateway_of(request)
    members: dict[str, list[str]] = {}
    for key in describe_keys(gateway.db, gateway.settings):
        if key.get("team"):
            members.setdefault(str(key["team"]), []).append(str(key["name"]))
    return members


def _view(team: Team, keys: list[str]) -> TeamView:
    return TeamView(
        name=team.name,
        created_at=str(team.created_at)[:16].replace("T", " "),
        scope=scope_summary(team.scope),
        limits=limits_summary(team.scope.limits),
        pii=team.scope.pii or "",
        keys=tuple(keys),
    )


def _list(request: Request) -> list[TeamView]:
    members = _members(request)
    return [_view(t, members.get(t.name, [])) for t in _teams(request).list()]


@router.get("/console/teams")
async def list_teams(request: Request, operator: Operator = Depends(requires(MANAGE))) -> Response:
    return page(request, "teams/list.html", teams=await asyncio.to_thread(_list, request))


@router.get("/console/teams/new")
async def new_team(request: Request, operator: Operator = Depends(requires(MANAGE))) -> Response:
    return page(request, "teams/new.html", values={}, **scope_choices())


@router.post("/console/teams")
async def create_team(
    request: Request,
    operator: Operator = Depends(requires(MANAGE)),
    _csrf: None = Depends(csrf_checked),
) -> Response:
    values: dict[str, str] = {}
    try:
        values = form_values(await request.form())
        name = values.get("name", "")
        if not name:
            raise InvalidInput("a team needs a name", param="name")
        check_team_name(name)
        scope = parse_scope(values)
        team = await asyncio.to_thread(_teams(request).create, name, scope, actor=operator.actor)
    except UserError as exc:
        return form_error(request, "teams/new.html", exc, values=values, **scope_choices())
    return redirect(request, f"/console/teams/{team.name}", flash=f"Created team {team.name}.")


def _detail(request: Request, name: str) -> dict[str, Any]:
    team = _teams(request).get(name)
    keys = _members(request).get(name, [])
    return {"team": _view(team, keys), "values": scope_values(team.scope), **scope_choices()}


@router.get("/console/teams/{name}")
async def team_detail(
    request: Request, name: str, operator: Operator = Depends(requires(MANAGE))
) -> Response:
    context = await asyncio.to_thread(_detail, request, name)
    return page(request, "teams/detail.html", **context)


@router.post("/console/teams/{name}")
async def update_team(
    request: Request,
    name: str,
    operator: Operator = Depends(requires(MANAGE)),
    _csrf: None = Depends(csrf_checked),
) -> Response:
    """A new scope for the team: models, routes, expiry, PII policy, limits, budgets."""
    context = await asyncio.to_thread(_detail, request, name)
    values: dict[str, str] = {}
    try:
        values = form_values(await request.form())
        scope = parse_scope(values)
        await asyncio.to_thread(_teams(request).update, name, scope, actor=operator.actor)
    except UserError as exc:
        context["values"] = values
        return form_error(request, "teams/detail.html", exc, **context)
    return redirect(request, f"/console/teams/{name}", flash=f"Saved team {name}.")


@router.get("/console/teams/{name}/delete")
async def confirm_delete(
    request: Request, name: str, operator: Operator = Depends(requires(MANAGE))
) -> Response:
    context = await asyncio.to_thread(_detail, request, name)
    return page(request, "teams/delete.html", **context)


@router.post("/console/teams/{name}/delete")
async def delete_team(
    request: Request,
    name: str,
    operator: Operator = Depends(requires(MANAGE)),
    _csrf: None = Depends(csrf_checked),
) -> Response:
    context = await asyncio.to_thread(_detail, request, name)
    try:
        values = form_values(await request.form())
        if values.get("confirm") != "yes":
            raise InvalidInput("tick the box to confirm the deletion", param="confirm")
        await asyncio.to_thread(_teams(request).delete, name, actor=operator.actor)
    except UserError as exc:
        return form_error(request, "teams/delete.html", exc, **context)
    return redirect(request, "/console/teams", flash=f"Deleted team {name}.")
