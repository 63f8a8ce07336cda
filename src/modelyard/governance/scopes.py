"""Scopes: what a key (and its team) may do — models, routes, expiry, PII policy, limits.

A request must pass both the key's scope and its team's scope. ``None`` means "no
restriction" for models and routes; the stricter PII policy of the two applies; limits are
counted separately for the key and for the team (both must admit the request).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.errors import Forbidden, InvalidInput, Unauthorized

ROUTES = ("chat", "completions", "embeddings", "admin")
PII_POLICIES = ("off", "redact-logs", "redact", "block")
LIMIT_NAMES = ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "tokens_per_month")
_DURATION = re.compile(r"^(\d+)([hdw])$")
_TTL = re.compile(r"^(\d+)([smhd])$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidInput(f"{name.replace('_', ' ')} must be 0 or more", param=name)

    def to_json(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in LIMIT_NAMES if getattr(self, n) is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Limits:
        data = data or {}
        return cls(**{n: (int(data[n]) if data.get(n) is not None else None) for n in LIMIT_NAMES})


@dataclass(frozen=True)
class Scope:
    models: tuple[str, ...] | None = None
    routes: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    pii: str | None = None
    limits: Limits = field(default_factory=Limits)
    pilot: bool = False
    """May use versions in the ``approved`` stage (a pilot) as well as ``production`` ones."""
    cache: bool | None = None
    """The response cache: on, off, or None (not set: the team's setting, else off)."""
    cache_ttl_s: int | None = None
    """How long cached answers live (None: the team's, else ``cache_default_ttl_s``)."""

    def __post_init__(self) -> None:
        if self.cache_ttl_s is not None and self.cache_ttl_s < 1:
            raise InvalidInput("the cache TTL must be at least 1 second", param="cache")
        for route in self.routes or ():
            if route not in ROUTES:
                raise InvalidInput(
                    f"unknown route {route!r} (use {', '.join(ROUTES)})", param="routes"
                )
        if self.pii is not None and self.pii not in PII_POLICIES:
            raise InvalidInput(
                f"unknown PII policy {self.pii!r} (use {', '.join(PII_POLICIES)})", param="pii"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "models": list(self.models) if self.models is not None else None,
            "routes": list(self.routes) if self.routes is not None else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "pii": self.pii,
            "limits": self.limits.to_json(),
            "pilot": self.pilot,
            **({"cache": self.cache} if self.cache is not None else {}),
            **({"cache_ttl_s": self.cache_ttl_s} if self.cache_ttl_s is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Scope:
        data = data or {}
        expires = data.get("expires_at")
        return cls(
            models=tuple(data["models"]) if data.get("models") is not None else None,
            routes=tuple(data["routes"]) if data.get("routes") is not None else None,
            expires_at=datetime.fromisoformat(expires) if expires else None,
            pii=data.get("pii"),
            limits=Limits.from_json(data.get("limits")),
            pilot=bool(data.get("pilot", False)),
            cache=bool(data["cache"]) if data.get("cache") is not None else None,
            cache_ttl_s=int(data["cache_ttl_s"]) if data.get("cache_ttl_s") is not None else None,
        )


def split_list(text: str | None) -> tuple[str, ...] | None:
    """``"a, b"`` → ``("a", "b")``; ``None``/empty → ``None`` (no restriction)."""
    if text is None or not text.strip():
        return None
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def parse_expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """``30d``, ``12h``, ``2w`` from now, or an ISO date/time (UTC when no zone is given)."""
    if text is None or not text.strip():
        return None
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {"h": timedelta(hours=amount), "d": timedelta(days=amount)}.get(
            unit, timedelta(weeks=amount)
        )
        return now + delta
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(
            f"cannot read expiry {text!r}: use 30d, 12h, 2w or an ISO date", param="expires"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_cache(text: str | None) -> tuple[bool | None, int | None]:
    """``--cache``: ``on``, ``off``, or a TTL (``90s``, ``10m``, ``2h``, ``1d``; on with it)
    → ``(cache, cache_ttl_s)``; None/empty → not set."""
    if text is None or not text.strip():
        return None, None
    value = text.strip().lower()
    if value in ("on", "off"):
        return value == "on", None
    match = _TTL.match(value)
    if match is None:
        raise InvalidInput(
            f"cannot read cache setting {text!r}: use on, off or a TTL such as 10m, 2h, 1d",
            param="cache",
        )
    return True, int(match.group(1)) * _TTL_UNITS[match.group(2)]


def stricter_pii(*policies: str | None) -> str:
    chosen = [p for p in policies if p is not None]
    return max(chosen, key=PII_POLICIES.index) if chosen else "off"


@dataclass(frozen=True)
class Access:
    """What a key may do: its name, team, admin flag, and both scopes."""

    key_name: str
    team: str | None = None
    admin: bool = False
    key_scope: Scope = field(default_factory=Scope)
    team_scope: Scope = field(default_factory=Scope)

    def pii_policy(self, default: str = "off") -> str:
        if self.key_scope.pii is None and self.team_scope.pii is None:
            return default
        return stricter_pii(self.key_scope.pii, self.team_scope.pii)

    @property
    def tenant(self) -> str:
        """Whose response-cache entries this key shares: its team's, else its own."""
        return f"team:{self.team}" if self.team is not None else f"key:{self.key_name}"

    def cache_ttl_s(self, default: int) -> int | None:
        """The response cache's TTL for this key, None when off: the key's setting, else
        its team's; the TTL the same way, else ``default``."""
        team = self.team_scope if self.team is not None else Scope()
        enabled = self.key_scope.cache if self.key_scope.cache is not None else team.cache
        if not enabled:
            return None
        return self.key_scope.cache_ttl_s or team.cache_ttl_s or default

    @property
    def pilot(self) -> bool:
        """Pilot access, granted by the key's scope or its team's."""
        return self.key_scope.pilot or (self.team is not None and self.team_scope.pilot)

    def check_alive(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        for whose, scope in (("key", self.key_scope), ("team", self.team_scope)):
            if scope.expires_at is not None and scope.expires_at <= now:
                raise Unauthorized(f"the {whose} expired at {scope.expires_at.isoformat()}")

    def check_route(self, route: str) -> None:
        if route == "admin":
            if not self.admin:
                raise Forbidden(f"key {self.key_name!r} lacks admin rights", code="scope_admin")
            return
        for whose, scope in self._scopes():
            if scope.routes is not None and route not in scope.routes:
                raise Forbidden(
                    f"{whose} may not use the {route} route "
                    f"(allowed: {', '.join(scope.routes) or 'none'})",
                    code="scope_route",
                )

    def check_model(self, names: Iterable[str]) -> None:
        """``names``: every name the requested model goes by (alias, ``name``, ``name@N``)."""
        wanted = list(dict.fromkeys(names))
        for whose, scope in self._scopes():
            if scope.models is not None and not set(wanted) & set(scope.models):
                raise Forbidden(
                    f"{whose} may not use model {wanted[0]!r} "
                    f"(allowed: {', '.join(scope.models) or 'none'})",
                    param="model",
                    code="scope_model",
                )

    def _scopes(self) -> list[tuple[str, Scope]]:
        scopes = [(f"key {self.key_name!r}", self.key_scope)]
        if self.team is not None:
            scopes.append((f"team {self.team!r}", self.team_scope))
        return scopes
