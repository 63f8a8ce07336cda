"""``/console/engines``: the engine workers (state, slots in use, memory, restarts), the
gateway's queue, and tokens per second per model. ``/console/engines/status`` is the same
table alone, which ``console.js`` polls to refresh it; without scripts the page has a
Refresh link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from modelyard.operators.principal import Operator
from modelyard.web.auth import requires
from modelyard.web.render import page
from modelyard.web.state import console_state, gateway_of

router = APIRouter()
REFRESH_SECONDS = 5


@dataclass(frozen=True)
class WorkerView:
    model: str
    state: str
    pid: int | None
    in_use: int | None
    slots: int | None
    memory_bytes: int | None
    restarts: int | None
    error: str | None
    tokens_per_s: float | None


@dataclass(frozen=True)
class QueueView:
    running: int
    waiting: int
    slots: int


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _generated_tokens(request: Request) -> dict[str, float]:
    """Completion tokens generated so far, per model (the gateway's Prometheus counter)."""
    totals: dict[str, float] = {}
    for family in gateway_of(request).metrics.tokens_out.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[sample.labels.get("model", "")] = float(sample.value)
    return totals


def _status(request: Request) -> dict[str, Any]:
    gateway = gateway_of(request)
    rates = console_state(request).rates.update(_generated_tokens(request))
    workers = [
        WorkerView(
            model=str(w.get("model", "")),
            state=str(w.get("state", "unknown")),
            pid=_int(w.get("pid")),
            in_use=_int(w.get("in_use")),
            slots=_int(w.get("slots")),
            memory_bytes=_int(w.get("memory_bytes")),
            restarts=_int(w.get("restarts")),
            error=str(w["error"]) if w.get("error") else None,
            tokens_per_s=rates.get(str(w.get("model", ""))),
        )
        for w in gateway.workers.status()
    ]
    queue = QueueView(
        running=gateway.admission.running(),
        waiting=gateway.admission.waiting(),
        slots=gateway.settings.worker_slots,
    )
    return {
        "workers": workers,
        "queue": queue,
        "engine": gateway.workers.describe(),
        "refresh_seconds": REFRESH_SECONDS,
    }


@router.get("/console/engines")
async def engines(request: Request, _: Operator = Depends(requires("engines.read"))) -> Response:
    return page(request, "engines/page.html", **_status(request))


@router.get("/console/engines/status")
async def engines_status(
    request: Request, _: Operator = Depends(requires("engines.read"))
) -> Response:
    """The status table alone (polled by console.js)."""
    return page(request, "engines/_status.html", **_status(request))
