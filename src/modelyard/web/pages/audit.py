"""``/console/audit``: browse and filter the log, one record, verify status, export, erasure.

Reading (``audit.read``) uses the readers behind ``modelyard audit list/show/verify/export``;
erasure (``audit.erase``) calls :func:`~modelyard.audit.erasure.erase_subject` with the
operator as actor, which records the erasure itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from modelyard.audit.erasure import Erasure, erase_subject
from modelyard.audit.log import AuditLog
from modelyard.audit.query import EXPORT_COLUMNS, Filter, export_lines, iter_records, show_record
from modelyard.errors import InvalidInput, UserError
from modelyard.operators.principal import Operator
from modelyard.web.auth import csrf_checked, requires
from modelyard.web.pages.audit_views import (
    PAGE_SIZE,
    AuditQuery,
    browse,
    kind_choices,
    parse_moment,
    record_kind,
    verify_status,
)
from modelyard.web.pages.scope_form import form_values
from modelyard.web.render import form_error, page
from modelyard.web.state import console_state, gateway_of

router = APIRouter()
READ = "audit.read"
ERASE = "audit.erase"
EXPORT_FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def _query(request: Request) -> AuditQuery:
    params = request.query_params
    before = params.get("before", "").strip()
    if before and not before.isdigit():
        raise InvalidInput("before must be a sequence number", param="before")
    size = params.get("size", "").strip()
    if size and not size.isdigit():
        raise InvalidInput("size must be a whole number of records", param="size")
    return AuditQuery(
        kind=params.get("kind", "").strip(),
        actor=params.get("actor", "").strip(),
        target=params.get("target", "").strip(),
        since=params.get("since", "").strip(),
        until=params.get("until", "").strip(),
        text=params.get("text", "").strip(),
        before=int(before) if before else None,
        page_size=int(size) if size else PAGE_SIZE,
    )


@router.get("/console/audit")
async def audit_list(request: Request, operator: Operator = Depends(requires(READ))) -> Response:
    query = AuditQuery()
    context: dict[str, Any] = {"kinds": kind_choices(), "records": [], "older": None}
    try:
        query = _query(request)
        gateway = gateway_of(request)
        found = await asyncio.to_thread(browse, gateway.db, query)
    except UserError as exc:
        return form_error(
            request, "audit/list.html", exc, query=query, values=_shown(request), **context
        )
    context.update(records=found.records, older=found.older)
    return page(request, "audit/list.html", query=query, values=_shown(request), **context)


def _shown(request: Request) -> dict[str, str]:
    """The filters as submitted, to fill the filter form again."""
    names = ("kind", "actor", "target", "since", "until", "text")
    return {name: request.query_params.get(name, "") for name in names}


@router.get("/console/audit/verify")
async def audit_verify(request: Request, operator: Operator = Depends(requires(READ))) -> Response:
    """Runs the check behind ``modelyard audit verify`` (the whole chain) on each visit."""
    gateway = gateway_of(request)
    result = await asyncio.to_thread(verify_status, gateway.db, gateway.settings)
    return page(request, "audit/verify.html", verify=result)


@router.get("/console/audit/export")
async def export_form(request: Request, operator: Operator = Depends(requires(READ))) -> Response:
    return page(request, "audit/export.html", values={"format": "jsonl"})


def _export_period(values: dict[str, str]) -> tuple[str, datetime | None, datetime | None]:
    fmt = values.get("format") or "jsonl"
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r} (use jsonl or csv)", param="format")
    since = parse_moment(values.get("since"), param="since")
    until = parse_moment(values.get("until"), param="until", end_of_day=True)
    if since is not None and until is not None and until <= since:
        raise InvalidInput("the end of the period must come after its start", param="until")
    return fmt, since, until


@router.get("/console/audit/export/download")
async def export_download(
    request: Request, operator: Operator = Depends(requires(READ))
) -> Response:
    """Every record in the period, oldest first: the file ``modelyard audit export`` writes."""
    values = {k: v.strip() for k, v in request.query_params.items()}
    try:
        fmt, since, until = _export_period(values)
    except UserError as exc:
        return form_error(request, "audit/export.html", exc, values=values)
    gateway = gateway_of(request)
    stamp = console_state(request).clock().strftime("%Y%m%dT%H%M%SZ")

    def lines() -> Iterator[str]:
        yield from export_lines(iter_records(gateway.db, Filter(since, until)), fmt)

    return StreamingResponse(
        lines(),
        media_type=EXPORT_FORMATS[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="modelyard-audit-{stamp}.{fmt}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/console/audit/erase")
async def erase_form(request: Request, operator: Operator = Depends(requires(ERASE))) -> Response:
    return page(request, "audit/erase.html", values={})


def _erase(request: Request, subject: str, reason: str, actor: str) -> Erasure:
    """Through the gateway's own audit log (one appender per process), else a fresh one;
    the reason is recorded with the erasure."""
    gateway = gateway_of(request)
    if gateway.governance is not None:
        return erase_subject(gateway.governance.audit, subject, actor=actor, reason=reason)
    log = AuditLog(gateway.db, gateway.settings)
    try:
        return erase_subject(log, subject, actor=actor, reason=reason)
    finally:
        log.close(checkpoint=False)


@router.post("/console/audit/erase")
async def erase(
    request: Request,
    operator: Operator = Depends(requires(ERASE)),
    _csrf: None = Depends(csrf_checked),
) -> Response:
    """Crypto-shred a data subject, as ``modelyard audit erase`` does (it cannot be undone)."""
    values: dict[str, str] = {}
    try:
        values = form_values(await request.form())
        subject, reason = values.get("subject", ""), values.get("reason", "")
        if not subject:
            raise InvalidInput("name the data subject to erase", param="subject")
        if not reason:
            raise InvalidInput(
                "give the reason for the erasure (e.g. the request's reference)", param="reason"
            )
        if values.get("confirm") != "yes":
            raise InvalidInput(
                "tick the box to confirm: an erasure cannot be undone", param="confirm"
            )
        erasure = await asyncio.to_thread(_erase, request, subject, reason, operator.actor)
    except UserError as exc:
        return form_error(request, "audit/erase.html", exc, values=values)
    per_kind = sorted((kind, len(seqs)) for kind, seqs in erasure.records.items())
    return page(
        request, "audit/erased.html", erasure=erasure, per_kind=per_kind, reason=values["reason"]
    )


@router.get("/console/audit/{seq}")
async def audit_record(
    request: Request, seq: int, operator: Operator = Depends(requires(READ))
) -> Response:
    """One record in full, texts opened (``[erased]`` after erasure): ``modelyard audit show``."""
    gateway = gateway_of(request)
    record = await asyncio.to_thread(show_record, gateway.db, seq)
    fields = [(name, record.get(name)) for name in EXPORT_COLUMNS if name != "details"]
    details = json.dumps(record.get("details") or {}, indent=2, sort_keys=True, default=str)
    return page(
        request,
        "audit/record.html",
        record=record,
        event=record_kind(record),
        fields=fields,
        details=details,
    )
