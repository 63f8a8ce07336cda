"""``/`` (a redirect to the console), ``/healthz`` (no auth, no I/O), ``/readyz``
(database, default model, production models' load checks) and ``/metrics``.

``/readyz`` needs no key: without an admin key it answers only ``{"status": "ready"}`` (200)
or ``{"status": "not_ready"}`` (503); an admin key also gets the checks and what failed.

A production version whose load was refused (its bytes do not match its digest, or its
signature does not verify: an active ``integrity-``/``signature-`` advisory, or a refusal by
this gateway's worker pool) makes ``/readyz`` not ready, naming the version."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import select

from modelyard.catalog.advisories import active_for, load_refusals
from modelyard.catalog.rows import ref_of
from modelyard.errors import ModelyardError
from modelyard.gateway.auth import require_admin
from modelyard.gateway.routes.common import gateway_of
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal
from modelyard.intake.default_model import find_default
from modelyard.store.lifecycle_tables import VersionStateRow
from modelyard.store.tables import ModelVersionRow

router = APIRouter()


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    """A browser pointed at the gateway finds the console (API clients use ``/v1``)."""
    return RedirectResponse("/console", status_code=303)


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
    checks.update(_refused_production(gateway))
    return checks


def _refused_production(gateway: Gateway) -> dict[str, str]:
    """``model REF: refused: why`` for each production version whose load was refused."""
    with gateway.db.session() as session:
        rows = list(
            session.scalars(
                select(ModelVersionRow)
                .join(VersionStateRow, VersionStateRow.version_id == ModelVersionRow.id)
                .where(VersionStateRow.stage == "production")
            )
        )
        refs = {row.id: ref_of(row) for row in rows}
        advisories = active_for(session, list(refs))
    found = {}
    for version_id, ref in refs.items():
        for advisory in load_refusals(advisories[version_id]):
            found[f"model {ref}"] = f"refused: {advisory.summary} (advisory {advisory.id})"
    production = set(refs.values())
    for worker in gateway.workers.status():
        if worker.get("refused") and worker.get("model") in production:
            found.setdefault(f"model {worker['model']}", f"refused: {worker['refused']}")
    return found


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks = await asyncio.to_thread(_readiness, gateway_of(request))
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not_ready"}
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal) and principal.admin:
        body["checks"] = checks
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(request: Request, principal: Principal = Depends(require_admin)) -> Response:
    del principal
    return Response(gateway_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
