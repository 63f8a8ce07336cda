"""``/admin`` lifecycle routes (admin keys only): stages, policy checks, aliases and rollout,
advisories, model cards and the deployment manifest. The acting admin key's name is the actor
recorded in transitions, alias history and the audit log.

Included by the app factory like the other routers: ``app.include_router(router)``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.cards import card_for
from modelyard.catalog.promotion import Lifecycle
from modelyard.deploy.manifest import build_manifest
from modelyard.gateway.auth import require_admin
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal
from modelyard.governance.policy import load_policy

router = APIRouter(prefix="/admin")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromoteBody(_Body):
    to: str
    reason: str = Field(min_length=1)
    sunset_at: datetime | None = None
    replacement: str | None = None
    override_no_policy: bool = False
    """With no policy file, promote into approved/production anyway (recorded)."""


class AliasBody(_Body):
    target: str
    canary: str | None = None
    weight: float | None = None
    reason: str = ""


class RollbackBody(_Body):
    reason: str = ""


class AdvisoryBody(_Body):
    model: str
    id: str
    severity: str
    action: str
    summary: str = ""


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _lifecycle(gateway: Gateway) -> Lifecycle:
    """The server's own policy file applies; a request cannot name another one."""
    return Lifecycle(gateway.registry, gateway.settings, load_policy(gateway.settings))


@router.get("/models/{name}/history")
async def history(
    name: str, request: Request, _: Principal = Depends(require_admin)
) -> dict[str, Any]:
    found = await asyncio.to_thread(_lifecycle(_gateway(request)).history, name)
    return {"object": "list", "data": [t.to_json() for t in found]}


@router.get("/models/{ref}/policy-check")
async def policy_check(
    ref: str,
    request: Request,
    to: str = Query(...),
    principal: Principal = Depends(require_admin),
) -> dict[str, Any]:
    service = _lifecycle(_gateway(request))
    report = await asyncio.to_thread(service.check, ref, to, actor=principal.actor)
    return report.to_json()


@router.post("/models/{ref}/promote")
async def promote(
    ref: str, body: PromoteBody, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    service = _lifecycle(_gateway(request))

    def work() -> dict[str, Any]:
        return service.promote(
            ref,
            body.to,
            actor=principal.actor,
            reason=body.reason,
            sunset_at=body.sunset_at,
            replacement=body.replacement,
            override_no_policy=body.override_no_policy,
        ).to_json()

    return await asyncio.to_thread(work)


@router.get("/models/{ref}/card")
async def card(
    ref: str, request: Request, _: Principal = Depends(require_admin)
) -> PlainTextResponse:
    text = await asyncio.to_thread(card_for, _lifecycle(_gateway(request)), ref)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")


@router.get("/aliases")
async def list_aliases(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    gateway = _gateway(request)
    found = await asyncio.to_thread(Aliases(gateway.registry, gateway.settings).list)
    return {"object": "list", "data": [a.to_json() for a in found]}


@router.get("/aliases/{alias}")
async def show_alias(
    alias: str, request: Request, _: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = _gateway(request)
    state, events = await asyncio.to_thread(Aliases(gateway.registry, gateway.settings).show, alias)
    return {**state.to_json(), "history": [e.to_json() for e in events]}


@router.put("/aliases/{alias}")
async def set_alias(
    alias: str, body: AliasBody, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = _gateway(request)
    service = Aliases(gateway.registry, gateway.settings)

    def work() -> dict[str, Any]:
        return service.set(
            alias,
            body.target,
            canary=body.canary,
            weight=body.weight,
            actor=principal.actor,
            reason=body.reason,
        ).to_json()

    return await asyncio.to_thread(work)


@router.post("/aliases/{alias}/rollback")
async def rollback_alias(
    alias: str,
    request: Request,
    body: RollbackBody | None = None,
    principal: Principal = Depends(require_admin),
) -> dict[str, Any]:
    gateway = _gateway(request)
    service = Aliases(gateway.registry, gateway.settings)
    reason = body.reason if body else ""

    def work() -> dict[str, Any]:
        return service.rollback(alias, actor=principal.actor, reason=reason).to_json()

    return await asyncio.to_thread(work)


@router.delete("/aliases/{alias}")
async def delete_alias(
    alias: str, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = _gateway(request)
    service = Aliases(gateway.registry, gateway.settings)
    await asyncio.to_thread(lambda: service.remove(alias, actor=principal.actor))
    return {"name": alias, "deleted": True}


@router.get("/advisories")
async def list_advisories(
    request: Request, _: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = _gateway(request)
    found = await asyncio.to_thread(Advisories(gateway.registry, gateway.settings).list)
    return {"object": "list", "data": [a.to_json() for a in found]}


@router.post("/advisories", status_code=201)
async def add_advisory(
    body: AdvisoryBody, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = _gateway(request)
    service = Advisories(gateway.registry, gateway.settings)

    def work() -> dict[str, Any]:
        return service.add(
            body.model,
            body.id,
            severity=body.severity,
            action=body.action,
            summary=body.summary,
            actor=principal.actor,
        ).to_json()

    return await asyncio.to_thread(work)


@router.delete("/advisories/{ref}/{advisory_id}")
async def withdraw_advisory(
    ref: str, advisory_id: str, request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = _gateway(request)
    service = Advisories(gateway.registry, gateway.settings)
    found = await asyncio.to_thread(
        lambda: service.withdraw(ref, advisory_id, actor=principal.actor)
    )
    return found.to_json()


@router.get("/deployment")
async def deployment(request: Request, _: Principal = Depends(require_admin)) -> dict[str, Any]:
    gateway = _gateway(request)
    policy = load_policy(gateway.settings)
    return await asyncio.to_thread(build_manifest, gateway.registry, gateway.settings, policy)
