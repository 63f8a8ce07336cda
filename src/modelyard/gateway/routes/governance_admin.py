"""``/admin``: teams and keys over HTTP (admin keys only). Every change is an audit event,
written by the service in the change's own transaction, with the admin key's name as actor."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from modelyard.gateway.auth import require_admin
from modelyard.gateway.routes.common import gateway_of
from modelyard.governance.key_admin import create_scoped_key, describe_keys
from modelyard.governance.keys import Principal
from modelyard.governance.scopes import Limits, Scope, parse_cache, parse_expiry
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
    cache: str | None = Field(default=None, description="on, off, or a TTL (10m, 2h, 1d)")

    def scope(self) -> Scope:
        cache, cache_ttl_s = parse_cache(self.cache)
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
            cache=cache,
            cache_ttl_s=cache_ttl_s,
        )


class TeamBody(ScopeBody):
    name: str


class KeyBody(ScopeBody):
    name: str
    admin: bool = False
    team: str | None = None


@router.get("/teams")
async def list_teams(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    gateway = gateway_of(request)
    teams = await asyncio.to_thread(Teams(gateway.db, gateway.settings).list)
    return {"object": "list", "data": [t.to_json() for t in teams]}


@router.post("/teams", status_code=201)
async def create_team(
    body: TeamBody, request: Request, principal: Principal = Depends(require_admin)
) -> JSONResponse:
    gateway = gateway_of(request)

    def work() -> dict[str, Any]:
        teams = Teams(gateway.db, gateway.settings)
        return teams.create(body.name, body.scope(), actor=principal.actor).to_json()

    return JSONResponse(await asyncio.to_thread(work), status_code=201)


@router.delete("/teams/{name}")
async def delete_team(
    name: str, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = gateway_of(request)

    def work() -> None:
        Teams(gateway.db, gateway.settings).delete(name, actor=principal.actor)

    await asyncio.to_thread(work)
    return {"name": name, "deleted": True}


@router.get("/keys")
async def list_keys(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    gateway = gateway_of(request)
    data = await asyncio.to_thread(describe_keys, gateway.db, gateway.settings)
    return {"object": "list", "data": data}


@router.post("/keys", status_code=201)
async def create_key(
    body: KeyBody, request: Request, principal: Principal = Depends(require_admin)
) -> JSONResponse:
    gateway = gateway_of(request)

    def work() -> dict[str, Any]:
        scoped = create_scoped_key(
            gateway.db,
            gateway.settings,
            body.name,
            admin=body.admin,
            team=body.team,
            scope=body.scope(),
            created_by=f"key:{principal.key_name}",
            actor=principal.actor,
        )
        return scoped.to_json(with_secret=True)

    return JSONResponse(await asyncio.to_thread(work), status_code=201)


@router.post("/keys/{name}/revoke")
async def revoke_key(
    name: str, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = gateway_of(request)

    def work() -> dict[str, Any]:
        return gateway.keys.revoke(name, actor=principal.actor).to_json()

    return await asyncio.to_thread(work)
