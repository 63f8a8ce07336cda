"""What the provider says about itself: its discovery document and its signing keys.

Both are fetched without following redirects and with a timeout (see :mod:`.oidc_http`);
the discovered ``issuer`` must be exactly the configured one (OpenID Connect Discovery
section 4.3), so a document served for another issuer is never trusted. A provider that
cannot be reached, or answers with something that is not a discovery document, is
:class:`Unavailable`: nobody can log in through it until it is back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from modelyard.errors import InvalidInput
from modelyard.operators.oidc_config import OidcConfig, check_provider_url
from modelyard.operators.oidc_http import get_json, unavailable

WELL_KNOWN = "/.well-known/openid-configuration"
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""ID token algorithms accepted: never ``none``, never a MAC keyed with the client secret."""


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document that modelyard uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    device_authorization_endpoint: str | None
    id_token_algorithms: tuple[str, ...]
    iss_in_authorization_response: bool
    """RFC 9207: the provider names itself in the redirect back, and it must then match."""


def _endpoint(document: Mapping[str, Any], name: str, config: OidcConfig) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise unavailable(config, f"names a {name} that is not a string")
    try:
        return check_provider_url(value, what=f"the provider's {name}")
    except InvalidInput as error:
        raise unavailable(config, f"is misconfigured: {error.message}") from error


def _required(document: Mapping[str, Any], name: str, config: OidcConfig) -> str:
    value = _endpoint(document, name, config)
    if value is None:
        raise unavailable(config, f"names no {name} in its discovery document")
    return value


def _algorithms(document: Mapping[str, Any]) -> tuple[str, ...]:
    offered = document.get("id_token_signing_alg_values_supported")
    if not isinstance(offered, list):
        return ("RS256",)  # the one every OpenID provider must support
    return tuple(a for a in offered if isinstance(a, str) and a in ASYMMETRIC_ALGORITHMS)


def discover(http: httpx.Client, config: OidcConfig) -> ProviderMetadata:
    """The provider's metadata, from ``<issuer>/.well-known/openid-configuration``."""
    url = config.issuer.rstrip("/") + WELL_KNOWN
    document = get_json(http, url, config, "discovery document")
    if document.get("issuer") != config.issuer:
        raise InvalidInput(
            f"the OIDC provider at {url} calls itself {document.get('issuer')!r}, not "
            f"{config.issuer!r}: set oidc_issuer to exactly its issuer",
            param="oidc_issuer",
        )
    algorithms = _algorithms(document)
    if not algorithms:
        raise unavailable(config, "offers no ID token signature algorithm modelyard accepts")
    return ProviderMetadata(
        issuer=config.issuer,
        authorization_endpoint=_required(document, "authorization_endpoint", config),
        token_endpoint=_required(document, "token_endpoint", config),
        jwks_uri=_required(document, "jwks_uri", config),
        userinfo_endpoint=_endpoint(document, "userinfo_endpoint", config),
        device_authorization_endpoint=_endpoint(document, "device_authorization_endpoint", config),
        id_token_algorithms=algorithms,
        iss_in_authorization_response=document.get("authorization_response_iss_parameter_supported")
        is True,
    )


def fetch_keys(http: httpx.Client, metadata: ProviderMetadata, config: OidcConfig) -> KeySet:
    """The provider's public signing keys (its JWKS)."""
    document = get_json(http, metadata.jwks_uri, config, "signing keys (JWKS)")
    try:
        return KeySet.import_key_set(document)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise unavailable(config, f"sent signing keys that cannot be read: {error}") from error
