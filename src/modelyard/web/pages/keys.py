"""``/console/keys``: list, create (the secret shown once), revoke, set limits and budgets.

Every change goes through the same service call as ``modelyard keys`` and ``/admin/keys``
(:func:`~modelyard.governance.key_admin.create_scoped_key`, :meth:`KeyStore.revoke`,
:meth:`KeyPolicies.set`) with the operator as actor, so the service writes the audit record.
The plaintext of a new key exists only in the one response that shows it (``no-store``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from modelyard.errors import InvalidInput, UserError
from modelyard.governance.key_admin import create_scoped_key, describe_keys
from modelyard.governance.keys import ApiKey
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies, KeyPolicy, Teams
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
MANAGE = "keys.manage"


@dataclass(frozen=True)
class KeyView:
    """A key as the list shows it (never its secret)."""

    name: str
    prefix: str
    admin: bool
    active: bool
    team: str | None
    created_by: str
    created_at: str
    last_used_at: str
    revoked_at: str
    scope: str
    limits: str


def _when(value: Any) -> str:
    return str(value)[:16].replace("T", " ") if value else ""


def _view(described: dict[str, Any]) -> KeyView:
    scope = Scope.from_json(described)
    return KeyView(
        name=described["name"],
        prefix=described["prefix"],
        admin=bool(described["admin"]),
        active=bool(described["active"]),
        team=described.get("team"),
        created_by=described["created_by"],
        created_at=_when(described["created_at"]),
        last_used_at=_when(described.get("last_used_at")),
        revoked_at=_when(described.get("revoked_at")),
        scope=scope_summary(scope),
        limits=limits_summary(scope.limits),
    )


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@router.get("/console/keys")
async def list_keys(request: Request, operator: Operator = Depends(requires(MANAGE))) -> Response:
    gateway = gateway_of(request)
    described = await asyncio.to_thread(describe_keys, gateway.db, gateway.settings)
    return page(request, "keys/list.html", keys=[_view(d) for d in described])


async def _team_names(request: Request) -> list[str]:
    gateway = gateway_of(request)
    teams = await asyncio.to_thread(Teams(gateway.db, gateway.settings).list)
    return [t.name for t in teams]


@router.get("/console/keys/new")
async def new_key(request: Request, operator: Operator = Depends(requires(MANAGE))) -> Response:
    return page(
        request, "keys/new.html", values={}, teams=await _team_names(request), **scope_choices()
    )


@router.post("/console/keys")
async def create_key(
    request: Request,
    operator: Operator = Depends(requires(MANAGE)),
    _csrf: None = Depends(csrf_checked),
) -> Response:
    gateway = gateway_of(request)
    values: dict[str, str] = {}
    try:
        values = form_values(await request.form())
        name = values.get("name", "")
        if not name:
            raise InvalidInput("a key needs a name", param="name")
        scope = parse_scope(values)
        scoped = await asyncio.to_thread(
            create_scoped_key,
            gateway.db,
            gateway.settings,
            name,
            admin=values.get("admin") == "on",
            team=values.get("team") or None,
            scope=scope,
            created_by=operator.actor,
            actor=operator.actor,
        )
    except UserError as exc:
        teams = await _team_names(request)
        return _no_store(
            form_error(request, "keys/new.html", exc, values=values, teams=teams, **scope_choices())
        )
    shown = scoped.to_json(with_secret=False)
    response = page(request, "keys/created.html", key=_view(shown), secret=scoped.plaintext)
    return _no_store(response)


def _key_and_policy(request: Request, name: str) -> tuple[ApiKey, KeyPolicy | None, list[str]]:
    gateway = gateway_of(request)
    key = gateway.keys.get(name)
    policy = KeyPolicies(gateway.db, gateway.settings).get(name)
    teams = [t.name for t in Teams(gateway.db, gateway.settings).list()]
    return key, policy, teams


def _detail_context(key: ApiKey, policy: KeyPolicy | None, teams: list[str]) -> dict[str, Any]:
    scope = policy.scope if policy else Scope()
    values = scope_values(scope)
    if policy and policy.team:
        values["team"] = policy.team
    described = {**key.to_json(), "team": policy.team if policy else None, **scope.to_json()}
    return {"key": _view(described), "values": values, "teams": teams, **scope_choices()}


@router.get("/console/keys/{name}")
async def key_detail(
    request: Request, name: str, operator: Operator = Depends(requires(MANAGE))
) -> Response:
    key, policy, teams = await asyncio.to_thread(_key_and_policy, request, name)
    return page(request, "keys/detail.html", **_detail_context(key, policy, teams))


@router.post("/console/keys/{name}/scope")
async def set_scope(
    request: Request,
    name: str,
    operator: Operator = Depends(requires(MANAGE)),
    _csrf: None = Depends(csrf_checked),
) -> Response:
    """Team, scope, limits and budgets of a key (``key.policy.set``)."""
    gateway = gateway_of(request)
    key, policy, teams = await asyncio.to_thread(_key_and_policy, request, name)
    values: dict[str, str] = {}
    try:
        values = form_values(await request.form())
        scope = parse_scope(values)
        policies = KeyPolicies(gateway.db, gateway.settings)
        await asyncio.to_thread(
            policies.set, name, values.get("team") or None, scope, actor=operator.actor
        )
    except UserError as exc:
        context = _detail_context(key, policy, teams)
        context["values"] = values
        return form_error(request, "keys/detail.html", exc, **context)
    return redirect(request, f"/console/keys/{name}", flash=f"Saved the limits of key {name}.")


@router.get("/console/keys/{name}/revoke")
async def confirm_revoke(
    request: Request, name: str, operator: Operator = Depends(requires(MANAGE))
) -> Response:
    key, policy, teams = await asyncio.to_thread(_key_and_policy, request, name)
    return page(request, "keys/revoke.html", **_detail_context(key, policy, teams))


@router.post("/console/keys/{name}/revoke")
async def revoke_key(
    request: Request,
    name: str,
    operator: Operator = Depends(requires(MANAGE)),
    _csrf: None = Depends(csrf_checked),
) -> Response:
    gateway = gateway_of(request)
    key, policy, teams = await asyncio.to_thread(_key_and_policy, request, name)
    try:
        values = form_values(await request.form())
        if values.get("confirm") != "yes":
            raise InvalidInput(
                "tick the box to confirm: the key stops working at once", param="confirm"
            )
        await asyncio.to_thread(gateway.keys.revoke, name, actor=operator.actor)
    except UserError as exc:
        return form_error(request, "keys/revoke.html", exc, **_detail_context(key, policy, teams))
    return redirect(request, "/console/keys", flash=f"Revoked key {name}.")
