"""``POST /v1/embeddings``: vectors as floats or base64 (little-endian float32)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from modelyard.errors import InvalidInput
from modelyard.gateway.auth import require_key
from modelyard.gateway.generation import embedding_handler, serve_model
from modelyard.gateway.pipeline import EmbeddingCall, compose_embeddings
from modelyard.gateway.routes.common import batch_origin, gateway_of, response_headers
from modelyard.gateway.schemas import EmbeddingRequest
from modelyard.gateway.usage import TokenUsage
from modelyard.governance.keys import Principal

router = APIRouter()


def encode(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


@router.post("/v1/embeddings")
async def embeddings(
    body: EmbeddingRequest, request: Request, principal: Principal = Depends(require_key)
) -> JSONResponse:
    gateway = gateway_of(request)
    inputs = body.inputs()
    limit = gateway.settings.gateway_max_embedding_inputs
    if len(inputs) > limit:
        raise InvalidInput(f"at most {limit} inputs per request", param="input")
    served = await serve_model(gateway, body.model, principal)
    call = EmbeddingCall(
        request_id=request.state.request_id,
        principal=principal,
        served=served,
        inputs=inputs,
        user=body.user,
        client=request.client.host if request.client else None,
        batch=batch_origin(request),
    )
    handler = compose_embeddings(gateway.embedding_layers, embedding_handler(gateway))
    result = await handler(call)
    if body.dimensions is not None and result.vectors and body.dimensions != len(result.vectors[0]):
        raise InvalidInput(
            f"{served.version.ref} returns {len(result.vectors[0])} dimensions; "
            "it cannot shorten its vectors",
            param="dimensions",
        )
    payload = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v, body.encoding_format)}
            for i, v in enumerate(result.vectors)
        ],
        "model": served.version.ref,
        "usage": TokenUsage(result.prompt_tokens).embeddings_json(),
    }
    return JSONResponse(payload, headers=response_headers(request, served.headers))
