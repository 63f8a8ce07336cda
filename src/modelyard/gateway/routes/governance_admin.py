"""``/admin``: teams and keys over HTTP (admin keys only); every change is an audit event."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from modelyard.audit.log import AuditEntry
from modelyard.errors import Unavailable
from modelyard.gateway.auth import require_admin
from modelyard.gateway.routes.common import gateway_of
from modelyard.gateway.state import Gateway
from modelyard.governance.key_admin import create_scoped_key, describe_keys
from modelyard.governance.keys import KeyStore, Principal
from modelyard.governance.scopes import Limits, Scope, parse_expiry
from modelyard.governance.teams import Teams

router = APIRouter(prefix="/admin")


class ScopeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = None
    routes: list[str] | None = None
    expires: str | None = Field(default=None, description="30d, 12h, 2w or an ISO date")
    pii: str | None = None
    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    pilot: bool = False

    def scope(self) -> Scope:
        return Scope(
            models=tuple(self.models) if self.models is not None else None,
            routes=tuple(self.routes) if self.routes is not None else None,
            expires_at=parse_expiry(self.expires),
            pii=self.pii,
            limits=Limits(
                self.requests_per_minute,
                self.tokens_per_minute,
                self.tokens_per_day,
                self.tokens_per_month,
            ),
            pilot=self.pilot,
        )


class TeamBody(ScopeBody):
    name: str


class KeyBody(ScopeBody):
    name: str
    admin: bool = False
    team: str | None = None


def _event(gateway: Gateway, actor: str, event: str, subject: str) -> None:
    if gateway.governance is None:
        raise Unavailable("the audit log is not open")
    gateway.governance.audit.append(
        AuditEntry(kind="event", actor=actor, target=subject, details={"event": event})
    )


@router.get("/teams")
async def list_teams(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    teams = await asyncio.to_thread(Teams(gateway_of(request).db).list)
    return {"object": "list", "data": [t.to_json() for t in teams]}


@router.post("/teams", status_code=201)
async def create_team(
    body: TeamBody, request: Request, principal: Principal = Depends(require_admin)
) -> JSONResponse:
    gateway = gateway_of(request)

    def work() -> dict[str, Any]:
        team = Teams(gateway.db).create(body.name, body.scope())
        _event(gateway, principal.key_name, "team.create", f"team:{team.name}")
        return team.to_json()

    return JSONResponse(await asyncio.to_thread(work), status_code=201)


@router.delete("/teams/{name}")
async def delete_team(
    name: str, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = gateway_of(request)

    def work() -> None:
        Teams(gateway.db).delete(name)
        _event(gateway, principal.key_name, "team.delete", f"team:{name}")

    await asyncio.to_thread(work)
    return {"name": name, "deleted": True}


@router.get("/keys")
async def list_keys(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    data = await asyncio.to_thread(describe_keys, gateway_of(request).db)
    return {"object": "list", "data": data}


@router.post("/keys", status_code=201)
async def create_key(
    body: KeyBody, request: Request, principal: Principal = Depends(require_admin)
) -> JSONResponse:
    gateway = gateway_of(request)

    def work() -> dict[str, Any]:
        scoped = create_scoped_key(
            gateway.db,
            body.name,
            admin=body.admin,
            team=body.team,
            scope=body.scope(),
            created_by=f"key:{principal.key_name}",
        )
        _event(gateway, principal.key_name, "key.create", f"key:{body.name}")
        return scoped.to_json(with_secret=True)

    return JSONResponse(await asyncio.to_thread(work), status_code=201)


@router.post("/keys/{name}/revoke")
async def revoke_key(
    name: str, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = gateway_of(request)

    def work() -> dict[str, Any]:
        record = KeyStore(gateway.db).revoke(name)
        _event(gateway, principal.key_name, "key.revoke", f"key:{name}")
        return record.to_json()

    return await asyncio.to_thread(work)
