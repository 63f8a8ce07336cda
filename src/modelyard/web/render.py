"""Rendering console pages: the template environment, the common context, redirects, errors.

Every page gets the same context (:func:`page`): the operator, the session's CSRF token
(and ``csrf_field()`` for forms), the navigation, one-time flash messages carried across a
POST → 303 redirect in a sealed cookie, ``error`` (the API's error dict, or None) and
``values`` (what a form shows: the submitted values after an error, or a draft kept across
an expired session). Form errors are the API's errors (:func:`form_error`): the same
message, type, param and code the JSON API gives for the same mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from modelyard.errors import ModelyardError
from modelyard.operators.principal import Operator
from modelyard.operators.roles import sorted_roles
from modelyard.operators.sessions import ActiveSession
from modelyard.web.security import FLASH_COOKIE, clear_cookie, set_cookie
from modelyard.web.state import console_state, gateway_of

TEMPLATES = Path(__file__).parent / "templates"
FLASH_SECONDS = 120
FLASH_PURPOSE = "flash"


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    active: bool = False


_NAV: tuple[tuple[str, str, str], ...] = (
    ("Home", "/console", "catalog.read"),
    ("Models", "/console/models", "catalog.read"),
    ("Approvals", "/console/approvals", "catalog.read"),
    ("Aliases", "/console/aliases", "catalog.read"),
    ("Advisories", "/console/advisories", "catalog.read"),
    ("Engines", "/console/engines", "engines.read"),
    ("Keys", "/console/keys", "keys.manage"),
    ("Teams", "/console/teams", "teams.manage"),
    ("Audit", "/console/audit", "audit.read"),
    ("Usage", "/console/usage", "usage.read"),
    ("Evals", "/console/evals", "evals.read"),
)
"""(label, href, the action needed to see the link): the console's pages in nav order."""


def nav_for(operator: Operator | None, path: str) -> list[NavItem]:
    """The navigation ``operator`` may use, with the current section marked."""
    if operator is None:
        return []
    items = []
    for label, href, action in _NAV:
        if not operator.allows(action):
            continue
        active = path == href if href == "/console" else path == href or path.startswith(href + "/")
        items.append(NavItem(label, href, active))
    return items


def api_error(exc: ModelyardError) -> dict[str, Any]:
    """The error as the JSON API reports it (``{"error": {...}}``'s inner dict)."""
    return {"message": exc.message, "type": exc.error_type, "param": exc.param, "code": exc.code}


def filesize(value: int | float | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value.tzinfo else value.isoformat()


def path_part(value: Any) -> str:
    """A value as one URL path segment (``/`` and ``?`` escaped)."""
    return quote(str(value), safe="@")


def ref_href(ref: str) -> str:
    """The console page of ``NAME@N`` (or of model ``NAME``)."""
    name, _, number = str(ref).partition("@")
    if number.isdigit():
        return f"/console/models/{path_part(name)}/{number}"
    return f"/console/models/{path_part(name)}"


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["filesize"] = filesize
    env.filters["when"] = when
    env.filters["path_part"] = path_part
    env.filters["ref_href"] = ref_href
    env.globals["sorted_roles"] = sorted_roles
    return env


def session_of(request: Request) -> ActiveSession | None:
    active = getattr(request.state, "console_session", None)
    return active if isinstance(active, ActiveSession) else None


def _csrf_field(token: str) -> Callable[[], Markup]:
    def field() -> Markup:
        return Markup('<input type="hidden" name="csrf_token" value="{}">').format(escape(token))

    return field


def _flashes(request: Request) -> list[str]:
    state = console_state(request)
    sealed = request.cookies.get(FLASH_COOKIE)
    value = state.sealer.open(FLASH_PURPOSE, sealed, now=state.clock()) if sealed else None
    return [str(v) for v in value] if isinstance(value, list) else []


def _draft_values(request: Request) -> tuple[dict[str, str], str | None]:
    draft = console_state(request).drafts.take(request.query_params.get("draft"))
    if not draft:
        return {}, None
    fields = draft.get("fields")
    values = {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
    return values, str(draft.get("action") or "") or None


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``templates/<template>`` (autoescaped) with the common context."""
    state = console_state(request)
    active = session_of(request)
    operator = active.operator if active else None
    flashes = _flashes(request)
    values: dict[str, Any] = {}
    draft_action = None
    if operator is not None and "draft" in request.query_params:
        values, draft_action = _draft_values(request)
        if values:
            flashes.append(
                "Your session had expired; what you typed is filled in again. "
                "Check it and submit once more."
            )
    values.update(context.pop("values", None) or {})
    full: dict[str, Any] = {
        "request": request,
        "operator": operator,
        "csrf_token": active.csrf_token if active else "",
        "csrf_field": _csrf_field(active.csrf_token if active else ""),
        "nav": nav_for(operator, request.url.path),
        "flashes": flashes,
        "error": None,
        "values": values,
        "draft_action": draft_action,
        "oidc_configured": False,
        "can": (lambda action: operator is not None and operator.allows(action)),
        **context,
    }
    html = state.templates.get_template(template).render(full)
    response = HTMLResponse(html, status_code=status)
    if FLASH_COOKIE in request.cookies:
        clear_cookie(response, request, gateway_of(request).settings, FLASH_COOKIE)
    return response


def redirect(request: Request, url: str, *, flash: str | None = None) -> RedirectResponse:
    """303 See Other to ``url`` (a console path), with an optional one-time message."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        state = console_state(request)
        sealed = state.sealer.seal(
            FLASH_PURPOSE, [flash], expires_at=state.clock() + timedelta(seconds=FLASH_SECONDS)
        )
        set_cookie(
            response,
            request,
            gateway_of(request).settings,
            FLASH_COOKIE,
            sealed,
            max_age=FLASH_SECONDS,
        )
    return response


def form_error(
    request: Request, template: str, exc: ModelyardError, **context: Any
) -> HTMLResponse:
    """Re-render a form with ``exc`` as the API reports it, status ``exc.http_status``."""
    return page(request, template, status=exc.http_status, error=api_error(exc), **context)
