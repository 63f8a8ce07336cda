"""The ID token, checked in full, and who it says the user is.

An ID token is believed only when its signature verifies against the provider's published
keys with an asymmetric algorithm the provider advertises, and its ``iss``, ``aud`` (and
``azp``), ``exp``, ``iat``, ``nonce`` and ``at_hash`` are right (OpenID Connect Core
section 3.1.3.7). Any failure is one :class:`Unauthorized`; the token itself never appears
in a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from modelyard.errors import Unauthorized
from modelyard.operators.oidc_config import OidcConfig
from modelyard.operators.roles import Role

CLOCK_SKEW_S = 60
"""Leeway for ``exp`` and ``iat`` between this machine's clock and the provider's."""
MAX_ID_TOKEN_AGE_S = 600
"""An ID token is used straight after it is issued; an older one is a replay."""


class UnknownSigningKey(Exception):
    """The token names a key the cached JWKS lacks: the provider may have rotated keys."""


@dataclass(frozen=True)
class OidcIdentity:
    """Who logged in, as the provider vouches for it, and the roles their groups map to."""

    issuer: str
    subject: str
    username: str
    email: str | None
    groups: frozenset[str]
    roles: frozenset[Role]


def invalid(reason: str) -> Unauthorized:
    return Unauthorized(f"the provider's ID token is not valid: {reason}", code="oidc_id_token")


def verify_id_token(
    id_token: str,
    *,
    keys: KeySet,
    algorithms: tuple[str, ...],
    config: OidcConfig,
    nonce: str | None,
    access_token: str | None,
    now: int,
) -> dict[str, Any]:
    """The claims of ``id_token`` once it has passed every check, else Unauthorized.

    Raises UnknownSigningKey when its ``kid`` is not in ``keys`` (fetch the keys again)."""
    try:
        token = jwt.decode(id_token, keys, algorithms=list(algorithms))
    except InvalidKeyIdError as error:
        raise UnknownSigningKey from error
    except (JoseError, ValueError, TypeError) as error:
        raise invalid(_jose_reason(error)) from error
    options = {
        "iss": {"essential": True, "value": config.issuer},
        "aud": {"essential": True, "value": config.client_id},
    }
    params = {"client_id": config.client_id, "nonce": nonce, "access_token": access_token}
    claims = CodeIDToken(token.claims, token.header, options, params)
    try:
        claims.validate(now=now, leeway=CLOCK_SKEW_S)
    except JoseError as error:
        raise invalid(_jose_reason(error)) from error
    if nonce is not None and claims.get("nonce") != nonce:
        raise invalid("its nonce does not match this login")
    if claims["iat"] < now - MAX_ID_TOKEN_AGE_S - CLOCK_SKEW_S:
        raise invalid("it was issued too long ago")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise invalid("it names no subject")
    return dict(claims)


def _jose_reason(error: Exception) -> str:
    """A short reason from a joserfc error, which names the claim but never the token."""
    if isinstance(error, JoseError):
        return f"{error.error}: {error.description}" if error.description else error.error
    return type(error).__name__


def _path(claims: Mapping[str, Any], name: str) -> Any:
    """``claims[name]``, or a nested claim for a dotted name (``realm_access.roles``)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def has_claim(claims: Mapping[str, Any], name: str) -> bool:
    return _path(claims, name) is not None


def read_groups(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    """The user's groups: a list of strings, or one string for a single group."""
    value = _path(claims, name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list) and all(isinstance(g, str) for g in value):
        return frozenset(value)
    raise Unauthorized(
        f"the provider's {name!r} claim is not a list of group names", code="oidc_claims"
    )


def read_username(claims: Mapping[str, Any], name: str) -> str:
    """The configured username claim, else ``email``, else ``sub``."""
    for candidate in (name, "email", "sub"):
        value = _path(claims, candidate)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise Unauthorized("the provider names no user (no username, email or sub)")


def identity(claims: Mapping[str, Any], config: OidcConfig) -> OidcIdentity:
    """Who ``claims`` (ID token claims, completed from userinfo) describe."""
    groups = read_groups(claims, config.groups_claim)
    email = claims.get("email")
    return OidcIdentity(
        issuer=config.issuer,
        subject=str(claims["sub"]),
        username=read_username(claims, config.username_claim),
        email=email if isinstance(email, str) else None,
        groups=groups,
        roles=config.roles_for(groups),
    )
