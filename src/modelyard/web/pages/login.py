"""``/console/login``, logout, and the OIDC sign-in (``/console/auth/oidc`` → provider →
``/console/auth/callback``).

A local login is name, password and (when enrolled) a TOTP code, checked by
:meth:`OperatorAccounts.login_password`, which audits success and failure. The login form is
protected from cross-site posting by a double-submit token (a cookie and a form field that
must match), since there is no session yet to hold a CSRF token.

For OIDC, the pending login (state, nonce, PKCE verifier) waits in a cookie sealed with the
console key (:mod:`modelyard.web.sealing`): nothing to store or clean up on the server, and
the browser cannot read or alter it. It lives ten minutes and is bound to its purpose.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from modelyard.errors import Forbidden, ModelyardError, NotFound, Unauthorized
from modelyard.operators.oidc import OidcClient, PendingLogin
from modelyard.operators.principal import Operator
from modelyard.operators.sessions import ActiveSession
from modelyard.web.auth import console_session, csrf_checked, safe_next
from modelyard.web.render import form_error, page, redirect
from modelyard.web.security import (
    LOGIN_CSRF_COOKIE,
    PENDING_LOGIN_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    set_cookie,
)
from modelyard.web.state import accounts_of, console_state, gateway_of, sessions_of

router = APIRouter()
LOGIN_TEMPLATE = "login.html"
LOGIN_CSRF_SECONDS = 3600
PENDING_SECONDS = 600
PENDING_PURPOSE = "oidc-pending"


def _with_draft(target: str, draft: str | None) -> str:
    if not draft:
        return target
    return target + ("&" if "?" in target else "?") + urlencode({"draft": draft})


def _oidc_label(request: Request) -> str | None:
    """``Sign in with <issuer host>`` when OIDC is configured, else None."""
    issuer = gateway_of(request).settings.oidc_issuer
    if not issuer:
        return None
    return f"Sign in with {urlsplit(issuer).hostname or issuer}"


def _login_page(
    request: Request,
    values: dict[str, Any],
    *,
    error: ModelyardError | None = None,
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    context: dict[str, Any] = {
        "values": values,
        "login_csrf": token,
        "oidc_label": _oidc_label(request),
        "oidc_href": "/console/auth/oidc?"
        + urlencode({"next": values.get("next", "/console"), "draft": values.get("draft", "")}),
    }
    response = (
        form_error(request, LOGIN_TEMPLATE, error, **context)
        if error is not None
        else page(request, LOGIN_TEMPLATE, **context)
    )
    settings = gateway_of(request).settings
    set_cookie(response, request, settings, LOGIN_CSRF_COOKIE, token, max_age=LOGIN_CSRF_SECONDS)
    return response


async def _current(request: Request) -> ActiveSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await asyncio.to_thread(sessions_of(request).resolve, token)


def _signed_in(request: Request, operator: Operator, target: str) -> Response:
    """Issue the console session for ``operator`` and send the browser on to ``target``."""
    issued = sessions_of(request).issue(operator, "console")
    settings = gateway_of(request).settings
    response = redirect(request, target)
    max_age = int(settings.operator_session_hours * 3600)
    set_cookie(response, request, settings, SESSION_COOKIE, issued.token, max_age=max_age)
    clear_cookie(response, request, settings, LOGIN_CSRF_COOKIE)
    return response


@router.get("/console/login")
async def login_form(request: Request, next: str = "/console", draft: str = "") -> Response:
    target = safe_next(next)
    if await _current(request) is not None:
        return redirect(request, _with_draft(target, draft or None))
    return _login_page(request, {"next": target, "draft": draft})


@router.post("/console/login")
async def login(
    request: Request,
    name: str = Form(""),
    password: str = Form(""),
    totp: str = Form(""),
    next: str = Form("/console"),
    draft: str = Form(""),
    login_csrf: str = Form(""),
) -> Response:
    values = {"name": name, "next": safe_next(next), "draft": draft}
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(expected.encode(), login_csrf.encode()):
        refused = Forbidden(
            "the login form's security token is missing or stale: reload the page",
            code="csrf_failed",
        )
        return _login_page(request, values, error=refused)
    accounts = accounts_of(request)
    try:
        operator = await asyncio.to_thread(
            accounts.login_password,
            name.strip(),
            password,
            totp=totp.strip() or None,
            via="console",
        )
    except Unauthorized as exc:
        return _login_page(request, values, error=exc)
    target = _with_draft(values["next"], draft or None)
    return await asyncio.to_thread(_signed_in, request, operator, target)


@router.post("/console/logout", dependencies=[Depends(csrf_checked)])
async def logout(request: Request, active: ActiveSession = Depends(console_session)) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    await asyncio.to_thread(sessions_of(request).revoke, token)
    response = redirect(request, "/console/login", flash=f"{active.operator.name} logged out.")
    clear_cookie(response, request, gateway_of(request).settings, SESSION_COOKIE)
    return response


# -- OIDC ------------------------------------------------------------------------------------


def _oidc(request: Request) -> OidcClient:
    client = console_state(request).oidc_client()
    if client is None:
        raise NotFound("single sign-on is not configured (MODELYARD_OIDC_ISSUER is unset)")
    return client


@router.get("/console/auth/oidc")
async def oidc_begin(request: Request, next: str = "/console", draft: str = "") -> Response:
    """Send the browser to the provider; the pending login waits in a sealed cookie."""
    client = _oidc(request)
    state = console_state(request)
    settings = gateway_of(request).settings
    redirect_uri = settings.oidc_redirect_url or str(request.url_for("oidc_callback"))
    pending = await asyncio.to_thread(client.begin, redirect_uri)
    sealed = state.sealer.seal(
        PENDING_PURPOSE,
        {"pending": pending.to_json(), "next": safe_next(next), "draft": draft},
        expires_at=state.clock() + timedelta(seconds=PENDING_SECONDS),
    )
    response = redirect(request, pending.url)
    set_cookie(response, request, settings, PENDING_LOGIN_COOKIE, sealed, max_age=PENDING_SECONDS)
    return response


@router.get("/console/auth/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    """The provider's redirect back: check it, log the operator in, start the session."""
    state = console_state(request)
    settings = gateway_of(request).settings
    saved = state.sealer.open(
        PENDING_PURPOSE, request.cookies.get(PENDING_LOGIN_COOKIE), now=state.clock()
    )
    values: dict[str, Any] = {"next": "/console", "draft": ""}
    try:
        if not isinstance(saved, dict):
            raise Unauthorized(
                "this sign-in expired or began in another browser; start again",
                code="oidc_state",
            )
        values = {"next": safe_next(saved.get("next")), "draft": str(saved.get("draft") or "")}
        pending = PendingLogin.from_json(saved.get("pending") or {})
        found = await asyncio.to_thread(_oidc(request).finish, pending, dict(request.query_params))
        operator = await asyncio.to_thread(
            accounts_of(request).login_oidc,
            found.subject,
            found.username,
            found.roles,
            issuer=found.issuer,
        )
    except ModelyardError as exc:
        response = _login_page(request, values, error=exc)
    else:
        target = _with_draft(values["next"], values["draft"] or None)
        response = await asyncio.to_thread(_signed_in, request, operator, target)
    clear_cookie(response, request, settings, PENDING_LOGIN_COOKIE)
    return response
