"""Deny by default: every route but ``/healthz`` needs ``Authorization: Bearer <key>``."""

from __future__ import annotations

import asyncio

from fastapi import Request

from modelyard.errors import Forbidden, Unauthorized
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "malformed Authorization header: expected 'Bearer <key>'", code="invalid_api_key"
        )
    return token.strip()


async def require_key(request: Request) -> Principal:
    """FastAPI dependency: the principal behind the request's key (401 otherwise)."""
    token = bearer_token(request)
    gateway: Gateway = request.app.state.gateway
    principal = await asyncio.to_thread(gateway.keys.authenticate, token)
    request.state.principal = principal
    return principal


async def require_admin(request: Request) -> Principal:
    principal = await require_key(request)
    if not principal.admin:
        raise Forbidden("this route needs an admin key", code="admin_required")
    return principal
