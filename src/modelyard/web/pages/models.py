"""``/console/models``: the catalog, a model's versions, and a version's page (its model
card, stage history, lineage graph, signatures and trial loads), where operators propose a
promotion and set the intended use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import select

from modelyard.catalog.cards import card_for
from modelyard.catalog.lifecycle import Stage, StageInfo, Transition
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.rows import find_version
from modelyard.catalog.signing import Signature, stored_signatures
from modelyard.errors import ModelyardError
from modelyard.operators.principal import Operator
from modelyard.store.attestation_tables import TrialLoadRow
from modelyard.web.auth import requires
from modelyard.web.lineage import lineage_of, lineage_svg
from modelyard.web.render import form_error, page, redirect, ref_href
from modelyard.web.services import advisories_of, lifecycle_of, proposals_of
from modelyard.web.state import gateway_of

router = APIRouter()
VERSION_TEMPLATE = "models/version.html"


@dataclass(frozen=True)
class CatalogRow:
    version: ModelVersion
    stage: str

    @property
    def licence(self) -> str:
        return str(self.version.metadata.get("license") or "unknown")


@dataclass(frozen=True)
class TrialLoadView:
    ok: bool
    detail: str
    engine: str
    seconds: float
    created_by: str
    created_at: Any


def render_card(markdown: str) -> Markup:
    """The Markdown model card as HTML: raw HTML in it is escaped (``js-default`` has html
    off) and its headings sit below the page's section heading."""
    md = MarkdownIt("js-default")
    tokens = md.parse(markdown)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + 2)}"
    return Markup(md.renderer.render(tokens, md.options, {}))


def _catalog(request: Request, name: str | None = None) -> list[CatalogRow]:
    gateway = gateway_of(request)
    stages = lifecycle_of(request).stages()
    return [
        CatalogRow(v, stages[v.ref].stage.value if v.ref in stages else "registered")
        for v in gateway.registry.list_versions(name)
    ]


@router.get("/console/models")
async def catalog(request: Request, _: Operator = Depends(requires("catalog.read"))) -> Response:
    rows = await asyncio.to_thread(_catalog, request)
    models: dict[str, list[CatalogRow]] = {}
    for row in rows:
        models.setdefault(row.version.name, []).append(row)
    return page(request, "models/list.html", models=models)


def _model(request: Request, name: str) -> dict[str, Any]:
    rows = _catalog(request, name)
    history = lifecycle_of(request).history(name)
    return {"name": name, "rows": rows, "history": list(reversed(history))}


@router.get("/console/models/{name}")
async def model(
    request: Request, name: str, _: Operator = Depends(requires("catalog.read"))
) -> Response:
    context = await asyncio.to_thread(_model, request, name)
    return page(request, "models/model.html", **context)


def _trial_loads(request: Request, ref: str) -> list[TrialLoadView]:
    db = gateway_of(request).db
    with db.session() as session:
        row = find_version(session, ref)
        found = session.scalars(
            select(TrialLoadRow)
            .where(TrialLoadRow.version_id == row.id)
            .order_by(TrialLoadRow.id.desc())
            .limit(10)
        )
        return [
            TrialLoadView(t.ok, t.detail, t.engine, t.seconds, t.created_by, t.created_at)
            for t in found
        ]


def _version_context(request: Request, name: str, number: int) -> dict[str, Any]:
    gateway = gateway_of(request)
    lifecycle = lifecycle_of(request)
    ref = f"{name}@{number}"
    version, info = lifecycle.stage(ref)
    history: list[Transition] = [t for t in lifecycle.history(name) if t.ref == version.ref]
    stages = {r: i.stage.value for r, i in lifecycle.stages().items()}
    lineage = lineage_of(gateway.registry.list_versions(), version.ref, stages)
    signatures: list[Signature] = stored_signatures(gateway.db, version.ref)
    return {
        "version": version,
        "info": info,
        "licence": str(version.metadata.get("license") or "unknown"),
        "history": list(reversed(history)),
        "lineage": lineage,
        "lineage_svg": lineage_svg(lineage),
        "signatures": signatures,
        "trial_loads": _trial_loads(request, version.ref),
        "advisories": advisories_of(request).list(version.ref, include_withdrawn=True),
        "card": render_card(card_for(lifecycle, version.ref)),
        "targets": _targets(info),
        "pending": [p for p in proposals_of(request).pending() if p.ref == version.ref],
    }


def _targets(info: StageInfo) -> list[str]:
    """Stages a proposal may name from here (the lifecycle checks the move itself)."""
    return [s.value for s in Stage if s != info.stage]


async def _version_page(
    request: Request,
    name: str,
    number: int,
    *,
    status: int = 200,
    error: ModelyardError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    context = await asyncio.to_thread(_version_context, request, name, number)
    if error is not None:
        return form_error(request, VERSION_TEMPLATE, error, values=values or {}, **context)
    return page(request, VERSION_TEMPLATE, status=status, values=values or {}, **context)


@router.get("/console/models/{name}/{number}")
async def version_page(
    request: Request, name: str, number: int, _: Operator = Depends(requires("catalog.read"))
) -> Response:
    return await _version_page(request, name, number)


@router.post("/console/models/{name}/{number}/propose")
async def propose(
    request: Request,
    name: str,
    number: int,
    to: str = Form(""),
    reason: str = Form(""),
    operator: Operator = Depends(requires("lifecycle.propose")),
) -> Response:
    ref = f"{name}@{number}"
    try:
        proposal = await asyncio.to_thread(
            proposals_of(request).propose, ref, to, actor=operator.actor, reason=reason
        )
    except ModelyardError as exc:
        values = {"to": to, "reason": reason}
        return await _version_page(request, name, number, error=exc, values=values)
    return redirect(
        request,
        f"/console/approvals/{proposal.id}",
        flash=f"Proposed {ref} → {proposal.to_stage} (#{proposal.id}); "
        "a second operator must approve it.",
    )


@router.post("/console/models/{name}/{number}/intended-use")
async def intended_use(
    request: Request,
    name: str,
    number: int,
    intended_use: str = Form(""),
    operator: Operator = Depends(requires("catalog.change")),
) -> Response:
    ref = f"{name}@{number}"
    try:
        await asyncio.to_thread(
            lifecycle_of(request).set_intended_use, ref, intended_use.strip(), actor=operator.actor
        )
    except ModelyardError as exc:
        values = {"intended_use": intended_use}
        return await _version_page(request, name, number, error=exc, values=values)
    return redirect(request, ref_href(ref), flash=f"Intended use of {ref} saved.")
