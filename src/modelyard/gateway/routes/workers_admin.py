"""``GET /admin/workers``: the engine workers this gateway runs, their state and last error.

A worker whose model file was refused by the load check (digest mismatch, signature that does
not verify) is ``failed`` with ``refused`` saying why."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from modelyard.gateway.auth import require_admin
from modelyard.gateway.routes.common import gateway_of
from modelyard.governance.keys import Principal

router = APIRouter()


@router.get("/admin/workers")
async def list_workers(
    request: Request, principal: Principal = Depends(require_admin)
) -> dict[str, Any]:
    gateway = gateway_of(request)
    workers = [{**w, "pool": "interactive"} for w in gateway.workers.status()]
    if gateway.batch_workers is not None:
        workers += [{**w, "pool": "batch"} for w in gateway.batch_workers.status()]
    return {"object": "list", "engine": gateway.workers.describe(), "data": workers}
