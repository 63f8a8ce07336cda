"""The console's browser-facing security: response headers and the cookie policy.

Every response under ``/console`` carries a strict Content-Security-Policy (no inline
scripts or styles, nothing from elsewhere, no framing), ``nosniff``, a same-origin referrer
policy and ``X-Frame-Options: DENY``; pages are not cached (they show who is logged in).

Cookies are ``HttpOnly``, ``SameSite=Lax`` (``Strict`` would drop the session on the
identity provider's redirect back) and scoped to ``/console``. They are ``Secure`` when the
request came over TLS: directly, or as uvicorn's proxy-header handling reports it from a
trusted proxy's ``X-Forwarded-Proto``; ``console_secure_cookies`` forces either way.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.config import Settings

CONSOLE_PREFIX = "/console"
STATIC_PREFIX = "/console/static/"
SESSION_COOKIE = "modelyard_session"
FLASH_COOKIE = "modelyard_flash"
PENDING_LOGIN_COOKIE = "modelyard_oidc"
LOGIN_CSRF_COOKIE = "modelyard_login"
COOKIE_PATH = "/console"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
)


def is_console_path(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


class ConsoleSecurityHeaders:
    """Adds the security headers to every ``/console`` response (ASGI middleware), whatever
    answered it: a page, an error handler, a redirect or the static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not is_console_path(path):
            await self.app(scope, receive, send)
            return
        static = path.startswith(STATIC_PREFIX)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


def request_is_tls(request: Request) -> bool:
    """Whether the browser reached us over TLS (uvicorn sets the scheme from a trusted
    proxy's ``X-Forwarded-Proto``)."""
    return request.url.scheme in ("https", "wss")


def secure_cookies(request: Request, settings: Settings) -> bool:
    forced = settings.console_secure_cookies
    return request_is_tls(request) if forced is None else forced


def set_cookie(
    response: Response,
    request: Request,
    settings: Settings,
    name: str,
    value: str,
    *,
    max_age: int,
) -> None:
    """Set a console cookie with the policy above."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=secure_cookies(request, settings),
        httponly=True,
        samesite="lax",
    )


def clear_cookie(response: Response, request: Request, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        secure=secure_cookies(request, settings),
        httponly=True,
        samesite="lax",
    )
