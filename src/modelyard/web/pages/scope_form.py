"""The scope fields that the key and team forms share: read, checked, shown.

A form carries the same fields as ``modelyard keys create`` / ``teams create`` (models,
routes, expiry, PII policy, the four limits, pilot access) as text, and they are turned into
a :class:`~modelyard.governance.scopes.Scope` by the same functions the CLI uses, so a bad
value gets the same message as on the command line and from ``/admin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData

from modelyard.errors import InvalidInput
from modelyard.governance.scopes import (
    LIMIT_NAMES,
    PII_POLICIES,
    ROUTES,
    Limits,
    Scope,
    parse_expiry,
    split_list,
)

LIMIT_LABELS = {
    "requests_per_minute": "Requests per minute",
    "tokens_per_minute": "Tokens per minute",
    "tokens_per_day": "Tokens per day (budget)",
    "tokens_per_month": "Tokens per month (budget)",
}
SCOPE_FIELDS = ("models", "routes", "expires", "pii", "pilot", *LIMIT_NAMES)
MAX_FIELD = 2000
"""Longest text accepted in one field (a list of model names fits easily)."""


def form_values(form: FormData) -> dict[str, str]:
    """The submitted text fields (the last value of a repeated one), uploads ignored, and
    the CSRF token left out: what a re-rendered form is filled with."""
    values: dict[str, str] = {}
    for name, value in form.multi_items():
        if isinstance(value, str) and name != "csrf_token":
            if len(value) > MAX_FIELD:
                raise InvalidInput(
                    f"{name} is too long (at most {MAX_FIELD} characters)", param=name
                )
            values[name] = value.strip()
    return values


def _whole(values: Mapping[str, str], name: str) -> int | None:
    text = values.get(name, "").strip().replace(",", "").replace("_", "")
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(
            f"{LIMIT_LABELS[name].lower()} must be a whole number, 0 or more (or empty for "
            "no limit)",
            param=name,
        )
    return int(text)


def parse_scope(values: Mapping[str, str]) -> Scope:
    """The scope the form describes; InvalidInput naming the first bad field."""
    return Scope(
        models=split_list(values.get("models")),
        routes=split_list(values.get("routes")),
        expires_at=parse_expiry(values.get("expires")),
        pii=values.get("pii") or None,
        limits=Limits(*(_whole(values, name) for name in LIMIT_NAMES)),
        pilot=values.get("pilot") in ("on", "yes", "true", "1"),
    )


def scope_values(scope: Scope) -> dict[str, str]:
    """A stored scope as form values: saving the form unchanged keeps the scope as it is."""
    values = {
        "models": ", ".join(scope.models) if scope.models is not None else "",
        "routes": ", ".join(scope.routes) if scope.routes is not None else "",
        "expires": scope.expires_at.isoformat() if scope.expires_at else "",
        "pii": scope.pii or "",
    }
    if scope.pilot:
        values["pilot"] = "on"
    for name, value in scope.limits.to_json().items():
        values[name] = str(value)
    return values


def limits_summary(limits: Limits) -> str:
    """``tokens per day 200,000 · requests per minute 60``, or ``none``."""
    parts = [f"{LIMIT_LABELS[name].lower()} {value:,}" for name, value in limits.to_json().items()]
    return " · ".join(parts) or "none"


def scope_summary(scope: Scope) -> str:
    """Models, routes, PII policy, expiry and pilot access in one line."""
    parts = [
        "models: " + (", ".join(scope.models) if scope.models is not None else "all"),
        "routes: " + (", ".join(scope.routes) if scope.routes is not None else "all"),
    ]
    if scope.pii:
        parts.append(f"PII: {scope.pii}")
    if scope.expires_at:
        parts.append(f"expires {scope.expires_at:%Y-%m-%d %H:%M} UTC")
    if scope.pilot:
        parts.append("pilot versions allowed")
    return " · ".join(parts)


def scope_choices() -> dict[str, Any]:
    """What the shared form template lists: routes, PII policies, limit labels."""
    return {"routes": ROUTES, "pii_policies": PII_POLICIES, "limit_labels": LIMIT_LABELS}
