"""OIDC settings, checked once: the issuer, the client, which claims to read, groups to roles.

A mistake here is found when modelyard starts, not at the first login: an unknown role in
the role map, an issuer that would send tokens over plain HTTP to another machine, or a role
map that would let nobody in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from modelyard.config import Settings
from modelyard.errors import InvalidInput
from modelyard.operators.roles import Role, parse_roles

LOOPBACK_NAMES = frozenset({"localhost"})
DEFAULT_TIMEOUT_S = 10.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as ``urlsplit`` gives it: lower case, no brackets) is this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_provider_url(url: str, *, what: str, param: str | None = None) -> str:
    """``url`` if it is an absolute HTTPS URL, or HTTP to a loopback host (a provider under
    test on this machine); else InvalidInput. Tokens and codes cross these URLs, so plain
    HTTP to another machine is refused."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as error:
        raise InvalidInput(f"{what} {url!r} is not a URL: {error}", param=param) from error
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidInput(f"{what} {url!r} must be an absolute https:// URL", param=param)
    if parts.scheme == "http" and not is_loopback(host):
        raise InvalidInput(
            f"{what} {url!r} must use https:// (plain http:// only to 127.0.0.1, ::1 or localhost)",
            param=param,
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{what} {url!r} must not hold a user name or password", param=param)
    return url


def check_issuer(issuer: str) -> str:
    """The issuer URL (OpenID Connect Discovery section 3: no query and no fragment)."""
    check_provider_url(issuer, what="OIDC issuer", param="oidc_issuer")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or issuer.endswith(("?", "#")):
        raise InvalidInput(
            f"OIDC issuer {issuer!r} must have no query or fragment", param="oidc_issuer"
        )
    return issuer


def parse_role_map(text: str) -> Mapping[str, frozenset[Role]]:
    """``"ml-admins=admin,ml-ops=operator,ml-ops=viewer"`` as group → roles.

    A group may appear several times (its roles add up). An entry without ``=``, with an
    empty group or an unknown role is an InvalidInput naming it."""
    roles: dict[str, set[Role]] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        group, sep, role = (part.strip() for part in entry.partition("="))
        if not sep or not group or not role:
            raise InvalidInput(
                f"oidc_role_map entry {entry!r} is not GROUP=ROLE", param="oidc_role_map"
            )
        try:
            parsed = parse_roles([role])
        except InvalidInput as error:
            raise InvalidInput(
                f"oidc_role_map entry {entry!r}: {error.message}", param="oidc_role_map"
            ) from error
        roles.setdefault(group, set()).update(parsed)
    return MappingProxyType({group: frozenset(r) for group, r in roles.items()})


def _scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(text.replace(",", " ").split()))
    if "openid" not in scopes:
        raise InvalidInput(
            f"oidc_scopes {text!r} must include 'openid' (no ID token without it)",
            param="oidc_scopes",
        )
    return scopes


@dataclass(frozen=True)
class OidcConfig:
    """How modelyard talks to the organisation's OpenID Connect provider."""

    issuer: str
    client_id: str
    role_map: Mapping[str, frozenset[Role]]
    client_secret: str | None = field(default=None, repr=False)
    """None: a public client (PKCE only); else sent as HTTP Basic (client_secret_basic)."""
    redirect_url: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email", "groups")
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        check_issuer(self.issuer)
        if not self.client_id:
            raise InvalidInput("oidc_client_id is needed with oidc_issuer", param="oidc_client_id")
        if "openid" not in self.scopes:
            raise InvalidInput("the OIDC scopes must include 'openid'", param="oidc_scopes")
        if not self.role_map:
            raise InvalidInput(
                "oidc_role_map is empty: no provider group would map to a role, so nobody "
                "could log in (e.g. 'ml-admins=admin,ml-ops=operator')",
                param="oidc_role_map",
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The settings' OIDC configuration; None when ``oidc_issuer`` is unset."""
        if not settings.oidc_issuer:
            return None
        return cls(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id or "",
            client_secret=settings.oidc_client_secret or None,
            redirect_url=settings.oidc_redirect_url or None,
            scopes=_scopes(settings.oidc_scopes),
            groups_claim=settings.oidc_groups_claim,
            username_claim=settings.oidc_username_claim,
            role_map=parse_role_map(settings.oidc_role_map),
        )

    def roles_for(self, groups: Iterable[str]) -> frozenset[Role]:
        """The roles that ``groups`` map to (empty: the user may not log in)."""
        roles: set[Role] = set()
        for group in groups:
            roles.update(self.role_map.get(group, ()))
        return frozenset(roles)
