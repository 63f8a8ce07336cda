"""``/v1/batches``: create, retrieve, list and cancel batches (OpenAI's Batch API).

Creating a batch checks every line of its input file against the endpoint's request schema:
a file with problems makes a ``failed`` batch whose ``errors`` list them (OpenAI's
behaviour); a good one is split into lines and left for a gateway process's batch runner
(``batch/runner.py``) to run in idle engine slots.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from modelyard.batch.input_lines import ENDPOINTS, check_bodies, parse_lines
from modelyard.batch.store import WINDOWS, BatchRecord, BatchStore, check_metadata
from modelyard.errors import InvalidInput
from modelyard.gateway.auth import require_key
from modelyard.gateway.routes.common import gateway_of
from modelyard.gateway.routes.files import file_store, page
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal

router = APIRouter()


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None


def batch_store(gateway: Gateway) -> BatchStore:
    return BatchStore(gateway.db, gateway.clock)


@router.post("/v1/batches")
async def create_batch(
    body: BatchCreate, request: Request, principal: Principal = Depends(require_key)
) -> JSONResponse:
    gateway = gateway_of(request)
    settings = gateway.settings
    if body.endpoint not in ENDPOINTS:
        raise InvalidInput(f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint")
    if body.completion_window not in WINDOWS:
        raise InvalidInput(
            f"completion_window must be one of {', '.join(WINDOWS)}", param="completion_window"
        )
    metadata = check_metadata(body.metadata)
    record, content = await asyncio.to_thread(
        file_store(gateway).content, principal, body.input_file_id
    )
    if record.purpose != "batch":
        raise InvalidInput(
            f"file {record.id} has purpose {record.purpose!r}, not 'batch'", param="input_file_id"
        )

    def create() -> BatchRecord:
        lines, problems = parse_lines(
            content,
            max_lines=settings.batch_max_lines,
            max_line_bytes=settings.gateway_max_body_bytes,
        )
        problems += check_bodies(lines, body.endpoint)
        return batch_store(gateway).create(
            principal,
            input_file_id=record.id,
            endpoint=body.endpoint,
            completion_window=body.completion_window,
            metadata=metadata,
            lines=lines,
            problems=problems,
        )

    batch = await asyncio.to_thread(create)
    return JSONResponse(batch.to_json())


@router.get("/v1/batches")
async def list_batches(
    request: Request,
    limit: int = Query(default=20, ge=1, le=100),
    after: str | None = None,
    principal: Principal = Depends(require_key),
) -> JSONResponse:
    store = batch_store(gateway_of(request))
    records, more = await asyncio.to_thread(lambda: store.page(principal, limit=limit, after=after))
    return JSONResponse(page(records, more))


@router.get("/v1/batches/{batch_id}")
async def get_batch(
    batch_id: str, request: Request, principal: Principal = Depends(require_key)
) -> JSONResponse:
    batch = await asyncio.to_thread(batch_store(gateway_of(request)).get, principal, batch_id)
    return JSONResponse(batch.to_json())


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(
    batch_id: str, request: Request, principal: Principal = Depends(require_key)
) -> JSONResponse:
    batch = await asyncio.to_thread(batch_store(gateway_of(request)).cancel, principal, batch_id)
    return JSONResponse(batch.to_json())
