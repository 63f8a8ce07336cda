"""Deny by default: every route but ``/healthz`` and ``/readyz`` needs a bearer key.

The console (``/console``) is the one exception: browsers carry no bearer key, so its pages
authenticate by the console session cookie instead (``modelyard.web.auth``), and are closed
by default there.

Routes need ``Authorization: Bearer <key>``. ``/readyz`` is answered without one (load
balancers call it so) and then says only ready or not; a key sent to it is checked as anywhere.

The key is checked by :class:`AuthenticateFirst`, an ASGI middleware that runs before anything
reads the request body: a request without a valid key is answered 401 from its headers alone,
and its connection is closed, so an unauthenticated client cannot make the gateway receive,
buffer or parse a body. The principal it finds is handed to the route's dependencies
(:func:`require_key`, :func:`require_admin`), which do not look the key up again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.errors import Forbidden, Unauthorized
from modelyard.gateway.pipeline import BatchOrigin
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal
from modelyard.store.generation_tables import read_generations

PUBLIC_PATHS = frozenset({"/healthz", "/"})
"""Routes answered without a key, which never look at one."""

KEY_OPTIONAL_PATHS = frozenset({"/readyz"})
"""Routes answered without a key (saying less); a key sent with them must be valid."""

CONSOLE_PREFIX = "/console"
"""The console's pages: authenticated by session cookie in ``modelyard.web``, not by key."""


def is_console(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def token_from_header(header: str | None) -> str:
    """The key in an ``Authorization`` header value; Unauthorized when there is none."""
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


def bearer_token(request: Request) -> str:
    return token_from_header(request.headers.get("authorization"))


def check_key(gateway: Gateway, token: str) -> Principal:
    """The principal behind ``token`` with the request's serving counters and its access, read
    on one connection: one small query while ``access_generation`` stands still (the key's row
    and policy come from the process's caches; expiry is checked per request by the layers).
    The rest of the request reuses both (``serve_model``, the governance layer)."""
    with gateway.db.reads() as session:
        counters = read_generations(session)  # before the rows: see store.generation_tables
        principal = gateway.keys.authenticate_in(session, counters.access, token)
        access = gateway.access_for(principal, session, counters.access)
    return dataclasses.replace(principal, generations=counters, access=access)


async def _send_unauthorized(send: Send, exc: Unauthorized) -> None:
    body = json.dumps(
        {
            "error": {
                "message": exc.message,
                "type": exc.error_type,
                "param": exc.param,
                "code": exc.code,
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
                # the body, if any, is never read: the connection cannot be reused
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _batch_line(scope: Scope) -> bool:
    """A request the batch runner made in process (``batch/dispatch.py``): its scope's state
    holds the principal and the batch line. Only the server builds a scope's state; a
    client's request arrives with an empty one."""
    state = scope.get("state") or {}
    return isinstance(state.get("batch"), BatchOrigin) and isinstance(
        state.get("principal"), Principal
    )


class AuthenticateFirst:
    """Checks the request's key from its headers before the body is read (ASGI middleware)."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or is_console(path):
            await self.app(scope, receive, send)
            return
        if _batch_line(scope):  # the server's own request for a batch line, its key checked
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization")
        if header is None and scope.get("path") in KEY_OPTIONAL_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            token = token_from_header(header)
            principal = await asyncio.to_thread(check_key, self.gateway, token)
        except Unauthorized as exc:
            await _send_unauthorized(send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def require_key(request: Request) -> Principal:
    """FastAPI dependency: the principal behind the request's key (401 otherwise)."""
    checked = getattr(request.state, "principal", None)
    if isinstance(checked, Principal):  # authenticated by AuthenticateFirst
        return checked
    token = bearer_token(request)
    gateway: Gateway = request.app.state.gateway
    principal = await asyncio.to_thread(check_key, gateway, token)
    request.state.principal = principal
    return principal


async def require_admin(request: Request) -> Principal:
    principal = await require_key(request)
    if not principal.admin:
        raise Forbidden("this route needs an admin key", code="admin_required")
    return principal
