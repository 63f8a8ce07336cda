"""Who is using the console, and may they: session, role and CSRF checks as dependencies.

* :func:`console_operator`: the operator of the session cookie. Without a live session the
  answer is a 303 to ``/console/login?next=…``; for a POST, the typed fields are kept
  (:mod:`modelyard.web.drafts`) and the login URL carries the draft's id, so nothing typed
  is lost.
* :func:`requires`: the same, plus the role check (:data:`modelyard.operators.roles.ACTIONS`).
  A refusal is a 403 page and an ``access.denied`` audit record.
* :func:`csrf_checked`: a state-changing request must carry the session's CSRF token in
  the form field ``csrf_token`` (compared in constant time); else 403.

The console router adds :func:`console_operator` and :func:`csrf_checked` to every page
router it includes, so a page that forgets them is still closed (deny by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

from fastapi import Depends
from starlette.requests import Request

from modelyard.errors import Forbidden
from modelyard.operators.denials import record_denial
from modelyard.operators.principal import Operator
from modelyard.operators.roles import ACTIONS
from modelyard.operators.sessions import ActiveSession, csrf_matches
from modelyard.web.security import SESSION_COOKIE, is_console_path
from modelyard.web.state import console_state, gateway_of, sessions_of

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH = "/console/login"


class LoginRequired(Exception):
    """No live console session: the handler answers 303 to ``location`` (the login page)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def safe_next(target: str | None) -> str:
    """``target`` if it is a console path on this site, else ``/console`` (no open redirect)."""
    if not target:
        return "/console"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not is_console_path(parts.path) or "\\" in target:
        return "/console"
    if parts.path.startswith(LOGIN_PATH) or parts.path.startswith("/console/auth/"):
        return "/console"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _page_before(request: Request) -> str:
    """Where a form was posted from: the same-origin Referer, else the console's home."""
    referer = request.headers.get("referer")
    if not referer:
        return "/console"
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.url.netloc:
        return "/console"
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


async def login_location(request: Request) -> str:
    """The login URL for this request; a POST's form fields are kept as a draft first."""
    if request.method in SAFE_METHODS:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return f"{LOGIN_PATH}?{urlencode({'next': safe_next(target)})}"
    query = {"next": _page_before(request)}
    form = await request.form()
    fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    state = console_state(request)
    draft = await asyncio.to_thread(state.drafts.save, request.url.path, fields)
    if draft:
        query["draft"] = draft
    return f"{LOGIN_PATH}?{urlencode(query)}"


async def console_session(request: Request) -> ActiveSession:
    """The live session behind the cookie (resolved once per request)."""
    known = getattr(request.state, "console_session", None)
    if isinstance(known, ActiveSession):
        return known
    token = request.cookies.get(SESSION_COOKIE)
    active = await asyncio.to_thread(sessions_of(request).resolve, token) if token else None
    if active is None:
        raise LoginRequired(await login_location(request))
    request.state.console_session = active
    return active


async def console_operator(request: Request) -> Operator:
    """FastAPI dependency: the operator of the session cookie (else 303 to the login)."""
    return (await console_session(request)).operator


def _record_denial(request: Request, operator: Operator, action: str) -> None:
    gateway = gateway_of(request)
    record_denial(
        gateway.db,
        gateway.settings,
        operator,
        action,
        path=request.url.path,
        method=request.method,
    )


def requires(action: str) -> Callable[..., Awaitable[Operator]]:
    """Dependency: the console operator, who must be allowed ``action``; a refusal is a 403
    and an ``access.denied`` audit record."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")

    async def allowed_operator(
        request: Request, operator: Operator = Depends(console_operator)
    ) -> Operator:
        if operator.allows(action):
            return operator
        await asyncio.to_thread(_record_denial, request, operator, action)
        needed = " or ".join(sorted(r.value for r in ACTIONS[action].roles))
        raise Forbidden(
            f"{operator.actor} may not {ACTIONS[action].summary} (needs role {needed})",
            code="role_required",
        )

    allowed_operator.__name__ = f"requires_{action.replace('.', '_')}"
    return allowed_operator


async def csrf_checked(request: Request, active: ActiveSession = Depends(console_session)) -> None:
    """Dependency: a state-changing request must carry the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    form = await request.form()
    given = form.get("csrf_token")
    if not csrf_matches(active.csrf_token, given if isinstance(given, str) else None):
        raise Forbidden(
            "the form's security token is missing or stale: reload the page and try again",
            code="csrf_failed",
        )
