"""``/console``: the dashboard: the catalog by stage, open approvals, advisories, engines."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from modelyard.catalog.lifecycle import Stage
from modelyard.operators.principal import Operator
from modelyard.web.auth import requires
from modelyard.web.render import page
from modelyard.web.services import advisories_of, lifecycle_of, proposals_of
from modelyard.web.state import gateway_of

router = APIRouter()


@dataclass(frozen=True)
class Summary:
    models: int
    versions: int
    by_stage: list[tuple[str, int]]
    pending: int
    advisories: int
    workers_ready: int
    workers: int


def _summary(request: Request) -> Summary:
    gateway = gateway_of(request)
    versions = gateway.registry.list_versions()
    stages = Counter(info.stage.value for info in lifecycle_of(request).stages().values())
    workers = gateway.workers.status()
    return Summary(
        models=len({v.name for v in versions}),
        versions=len(versions),
        by_stage=[(s.value, stages.get(s.value, 0)) for s in Stage],
        pending=len(proposals_of(request).pending()),
        advisories=len(advisories_of(request).list()),
        workers_ready=sum(1 for w in workers if w.get("state") == "ready"),
        workers=len(workers),
    )


@router.get("/console")
async def home(
    request: Request, operator: Operator = Depends(requires("catalog.read"))
) -> Response:
    summary = await asyncio.to_thread(_summary, request)
    return page(request, "home.html", summary=summary)
