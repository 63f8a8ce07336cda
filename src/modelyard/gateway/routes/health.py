"""``/healthz`` (no auth, no I/O), ``/readyz`` (database, default model) and ``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from modelyard.errors import ModelyardError
from modelyard.gateway.auth import require_admin, require_key
from modelyard.gateway.routes.common import gateway_of
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal
from modelyard.intake.default_model import find_default

router = APIRouter()


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _readiness(gateway: Gateway) -> dict[str, str]:
    checks = {"database": "ok" if gateway.db.ping() else "unreachable"}
    try:
        default = find_default(gateway.registry)
    except ModelyardError as exc:
        checks["default_model"] = f"error: {type(exc).__name__}"
        return checks
    if default is None:
        checks["default_model"] = "not registered"
    else:
        blob = gateway.registry.blobs.path_for(default.digest)
        ok = blob.is_file() and blob.stat().st_size == default.size_bytes
        checks["default_model"] = "ok" if ok else "blob missing or damaged"
    return checks


@router.get("/readyz")
async def readyz(request: Request, principal: Principal = Depends(require_key)) -> JSONResponse:
    del principal
    checks = await asyncio.to_thread(_readiness, gateway_of(request))
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics")
async def metrics(request: Request, principal: Principal = Depends(require_admin)) -> Response:
    del principal
    return Response(gateway_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
