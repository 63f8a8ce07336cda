"""HTTP with the provider: JSON in, JSON out, and its failures told apart.

A provider that cannot be reached, times out, or answers with something that is not a JSON
object is :class:`Unavailable` (nobody can log in through it until it is back); an OAuth
error in a JSON answer is the provider's refusal and is left to the caller. Request bodies,
headers and answers are never put in a message: they carry codes, tokens and the secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from modelyard.errors import Unavailable
from modelyard.operators.oidc_config import OidcConfig


def unavailable(config: OidcConfig, what: str) -> Unavailable:
    return Unavailable(f"OIDC provider {config.issuer} {what}", code="oidc_unavailable")


def client_auth(config: OidcConfig) -> tuple[dict[str, str], httpx.Auth]:
    """How the client proves itself at the token endpoints: HTTP Basic with the secret
    (``client_secret_basic``; RFC 6749 section 2.3.1 form-encodes both parts first), or
    only its ``client_id`` in the form for a public client."""
    if config.client_secret:
        auth = httpx.BasicAuth(
            quote(config.client_id, safe=""), quote(config.client_secret, safe="")
        )
        return {}, auth
    return {"client_id": config.client_id}, httpx.Auth()  # the base Auth adds nothing


def _reason(error: httpx.HTTPError) -> str:
    """The kind of failure (refused, timed out), which holds no request data."""
    detail = str(error).strip()
    return f"{type(error).__name__}: {detail[:200]}" if detail else type(error).__name__


def _json_object(response: httpx.Response, config: OidcConfig, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise unavailable(
            config, f"answered HTTP {response.status_code} with no JSON for its {what}"
        ) from error
    if not isinstance(body, dict):
        raise unavailable(config, f"answered its {what} with no JSON object")
    return body


def get_json(
    http: httpx.Client, url: str, config: OidcConfig, what: str, *, bearer: str | None = None
) -> dict[str, Any]:
    """GET ``url`` as a JSON object (HTTP 200 only)."""
    headers = {"Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        response = http.get(url, headers=headers)
    except httpx.HTTPError as error:
        raise unavailable(config, f"cannot be reached for its {what}: {_reason(error)}") from error
    if response.status_code != 200:
        raise unavailable(config, f"answered HTTP {response.status_code} for its {what}")
    return _json_object(response, config, what)


def post_form(
    http: httpx.Client, url: str, form: Mapping[str, str], config: OidcConfig, what: str
) -> dict[str, Any]:
    """POST ``form`` with the client's authentication; the JSON answer, an OAuth error
    object included (RFC 6749 section 5.2 answers errors with HTTP 400 or 401)."""
    extra, auth = client_auth(config)
    try:
        response = http.post(
            url, data={**form, **extra}, auth=auth, headers={"Accept": "application/json"}
        )
    except httpx.HTTPError as error:
        raise unavailable(config, f"cannot be reached for a {what}: {_reason(error)}") from error
    if response.status_code >= 500:
        raise unavailable(config, f"answered HTTP {response.status_code} for a {what}")
    body = _json_object(response, config, what)
    if response.status_code != 200 and "error" not in body:
        raise unavailable(config, f"answered HTTP {response.status_code} for a {what}")
    return body
