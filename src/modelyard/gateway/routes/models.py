"""``GET /v1/models``: the models and aliases this key may use, with modelyard's metadata."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from modelyard.catalog.serving import ServedModel, resolve_for_serving
from modelyard.engines.embeddings import is_sentence_transformer
from modelyard.errors import ModelyardError, NotFound
from modelyard.gateway.auth import require_key
from modelyard.gateway.routes.common import gateway_of
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal

router = APIRouter()


def _entry(name: str, served: ServedModel, kind: str) -> dict[str, Any]:
    version = served.version
    return {
        "id": name,
        "object": "model",
        "created": int(version.created_at.timestamp()),
        "owned_by": "modelyard",
        "modelyard": {
            "kind": kind,
            "version": version.ref,
            "digest": version.digest,
            "stage": getattr(served, "stage", None),
            "format": version.format,
            "context_length": version.metadata.get("context_length"),
            "architecture": version.metadata.get("architecture"),
            "quantization": version.metadata.get("quantization"),
            "aliases": list(version.aliases),
        },
    }


def _listing(gateway: Gateway, principal: Principal) -> list[dict[str, Any]]:
    """The models and aliases this key may use, as served to it (stage, pilot, scope)."""
    registry = gateway.registry
    access = gateway.access_for(principal)
    names = sorted({v.name for v in registry.list_versions()})
    aliases = [a.name for a in registry.list_aliases()]
    entries = []
    for name, kind in [(n, "model") for n in names] + [(a, "alias") for a in aliases]:
        try:
            served = resolve_for_serving(registry, name, pilot=access.pilot)
            access.check_model([name, served.version.name, served.version.ref])
        except ModelyardError:
            continue  # not servable to this key (scope, stage, advisory…): not listed
        entries.append(_entry(name, served, _usage(served)))
        entries[-1]["modelyard"]["entry"] = kind
    return entries


def _usage(served: ServedModel) -> str:
    return "embeddings" if is_sentence_transformer(served.version) else "generation"


@router.get("/v1/models")
async def list_models(
    request: Request, principal: Principal = Depends(require_key)
) -> JSONResponse:
    data = await asyncio.to_thread(_listing, gateway_of(request), principal)
    return JSONResponse({"object": "list", "data": data})


@router.get("/v1/models/{model_id:path}")
async def get_model(
    model_id: str, request: Request, principal: Principal = Depends(require_key)
) -> JSONResponse:
    gateway = gateway_of(request)

    def resolve() -> ServedModel:
        access = gateway.access_for(principal)
        served = resolve_for_serving(gateway.registry, model_id, pilot=access.pilot)
        access.check_model([model_id, served.version.name, served.version.ref])
        return served

    try:
        served = await asyncio.to_thread(resolve)
    except NotFound as exc:
        raise NotFound(exc.message, param="model", code="model_not_found") from exc
    return JSONResponse(_entry(model_id, served, _usage(served)))
