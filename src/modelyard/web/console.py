"""The console inside the gateway app: its router, static files, headers and error pages.

Every page module under ``modelyard.web.pages`` defines ``router`` with full paths under
``/console``. :func:`console_router` includes them all; every one but the login page gets
the session and CSRF dependencies at the router level, so a route is closed unless its page
is listed in :data:`PUBLIC_PAGES` (deny by default). :func:`install_console` adds the router,
the static files, the security headers and HTML error pages for ``/console`` paths (other
paths keep the API's JSON errors).
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from modelyard.errors import Fault, ModelyardError
from modelyard.gateway.errors import _validation_message
from modelyard.web.auth import LoginRequired, console_operator, csrf_checked
from modelyard.web.render import make_templates, page
from modelyard.web.sealing import Sealer
from modelyard.web.security import (
    SECURITY_HEADERS,
    ConsoleSecurityHeaders,
    is_console_path,
)
from modelyard.web.state import ConsoleState

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PUBLIC_PAGES = ("login",)
"""Pages reachable without a session (they check what they need themselves)."""
PAGES = (
    "home",
    "models",
    "approvals",
    "aliases",
    "advisories",
    "engines",
    "keys",
    "teams",
    "audit",
    "usage",
    "evals",
)
"""Pages behind the session: each included with the session and CSRF checks."""

Handler = Callable[[Request, Exception], Awaitable[Response]]
AnyHandler = Callable[[Request, Any], Response | Awaitable[Response]]


def _pages(names: tuple[str, ...]) -> list[tuple[str, APIRouter]]:
    """Each page's router, by page name."""
    modules = [(name, importlib.import_module(f"modelyard.web.pages.{name}")) for name in names]
    return [(name, module.router) for name, module in modules]


def page_routes() -> list[tuple[str, APIRoute]]:
    """Every console route with the page it belongs to (for checks and tests)."""
    return [
        (name, route)
        for name, router in _pages(PUBLIC_PAGES + PAGES)
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def console_router() -> APIRouter:
    """Every console page; all paths under ``/console``."""
    for name, route in page_routes():
        if not is_console_path(route.path):
            raise ValueError(f"console page {name}: route {route.path!r} is outside /console")
    router = APIRouter()
    for _, page_router in _pages(PUBLIC_PAGES):
        router.include_router(page_router)
    closed = [Depends(console_operator), Depends(csrf_checked)]
    for _, page_router in _pages(PAGES):
        router.include_router(page_router, dependencies=closed)
    return router


def _error_page(request: Request, status: int, error: dict[str, Any]) -> Response:
    return page(request, "errors/error.html", status=status, error=error, status_code=status)


def _console_handler(previous: AnyHandler | None, render: Handler) -> Handler:
    """``render`` for ``/console`` paths, else the handler that was there before."""

    async def handle(request: Request, exc: Exception) -> Response:
        if is_console_path(request.url.path):
            return await render(request, exc)
        if previous is None:
            raise exc
        answer = previous(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    return handle


async def _on_login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(exc.location, status_code=303)


async def _on_modelyard(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelyardError)
    if isinstance(exc, Fault):
        log.error("console request failed: %s", exc.message)
    error = {"message": exc.message, "type": exc.error_type, "param": exc.param, "code": exc.code}
    return _error_page(request, exc.http_status, error)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, param = _validation_message(exc)
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": "invalid_request",
    }
    return _error_page(request, 400, error)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: "There is no such page in the console.", 405: "Method not allowed here."}
    error = {
        "message": messages.get(exc.status_code, str(exc.detail)),
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    response = _error_page(request, exc.status_code, error)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    """The 500 page; set the security headers here, since this answer is made outside the
    middleware stack."""
    log.exception("unexpected error in the console", exc_info=exc)
    response = HTMLResponse(
        "<!doctype html><title>Error</title><h1>Internal error</h1>"
        '<p>See the gateway log.</p><p><a href="/console">Back to the console</a></p>',
        status_code=500,
    )
    for name, value in SECURITY_HEADERS:
        response.headers[name] = value
    response.headers["cache-control"] = "no-store"
    return response


def install_console(app: FastAPI) -> None:
    """Serve the console under ``/console`` in the gateway ``app`` (its ``state.gateway``
    must be set; call after the API's error handlers are installed)."""
    settings = app.state.gateway.settings
    app.state.console = ConsoleState(
        settings=settings, templates=make_templates(), sealer=Sealer(settings.home)
    )
    app.include_router(console_router())
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    handlers: list[tuple[type[Exception], Handler]] = [
        (ModelyardError, _on_modelyard),
        (RequestValidationError, _on_validation),
        (StarletteHTTPException, _on_http),
        (Exception, _on_unexpected),
    ]
    for kind, render in handlers:
        app.add_exception_handler(kind, _console_handler(app.exception_handlers.get(kind), render))
    app.add_exception_handler(LoginRequired, _on_login_required)
    app.add_middleware(ConsoleSecurityHeaders)
