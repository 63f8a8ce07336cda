"""``/v1/files``: upload, list, read and delete the Batch API's files (OpenAI's shapes).

A file belongs to the key that uploaded it (an admin key sees every file). An upload with
purpose ``batch`` is checked line by line before it is kept: every structural problem is
reported with its line number. Uploads may be up to ``MODELYARD_BATCH_MAX_FILE_BYTES``
(the size limits middleware allows this route that much).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from modelyard.batch.files import FileRecord, FileStore
from modelyard.batch.input_lines import parse_lines, refuse
from modelyard.errors import InvalidInput, TooLarge
from modelyard.gateway.auth import require_key
from modelyard.gateway.routes.common import gateway_of
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal

router = APIRouter()


def file_store(gateway: Gateway) -> FileStore:
    return FileStore(gateway.db, gateway.clock)


def page(records: list[Any], has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor page."""
    data = [r.to_json() for r in records]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


@router.post("/v1/files")
async def upload_file(
    request: Request,
    file: UploadFile = File(...),
    purpose: str = Form(...),
    principal: Principal = Depends(require_key),
) -> JSONResponse:
    gateway = gateway_of(request)
    settings = gateway.settings
    if purpose != "batch":
        raise InvalidInput(
            f"purpose must be 'batch' (the Batch API's input), not {purpose!r}", param="purpose"
        )
    content = await file.read(settings.batch_max_file_bytes + 1)
    if len(content) > settings.batch_max_file_bytes:
        raise TooLarge(
            f"the file is too large (limit {settings.batch_max_file_bytes} bytes: "
            "MODELYARD_BATCH_MAX_FILE_BYTES)",
            param="file",
            code="file_too_large",
        )
    _, problems = await asyncio.to_thread(
        parse_lines,
        content,
        max_lines=settings.batch_max_lines,
        max_line_bytes=settings.gateway_max_body_bytes,
    )
    if problems:
        raise refuse(problems)
    record: FileRecord = await asyncio.to_thread(
        file_store(gateway).create, principal, file.filename or "upload.jsonl", purpose, content
    )
    return JSONResponse(record.to_json())


@router.get("/v1/files")
async def list_files(
    request: Request,
    purpose: str | None = None,
    limit: int = Query(default=20, ge=1, le=10_000),
    after: str | None = None,
    order: str = Query(default="desc", pattern="^(asc|desc)$"),
    principal: Principal = Depends(require_key),
) -> JSONResponse:
    store = file_store(gateway_of(request))
    records, more = await asyncio.to_thread(
        lambda: store.page(principal, purpose=purpose, limit=limit, after=after, order=order)
    )
    return JSONResponse(page(records, more))


@router.get("/v1/files/{file_id}")
async def get_file(
    file_id: str, request: Request, principal: Principal = Depends(require_key)
) -> JSONResponse:
    store = file_store(gateway_of(request))
    record = await asyncio.to_thread(store.get, principal, file_id)
    return JSONResponse(record.to_json())


@router.get("/v1/files/{file_id}/content")
async def file_content(
    file_id: str, request: Request, principal: Principal = Depends(require_key)
) -> Response:
    store = file_store(gateway_of(request))
    record, content = await asyncio.to_thread(store.content, principal, file_id)
    return Response(
        content,
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="{record.id}.jsonl"'},
    )


@router.delete("/v1/files/{file_id}")
async def delete_file(
    file_id: str, request: Request, principal: Principal = Depends(require_key)
) -> JSONResponse:
    store = file_store(gateway_of(request))
    deleted = await asyncio.to_thread(store.delete, principal, file_id)
    return JSONResponse({"id": deleted, "object": "file", "deleted": True})
