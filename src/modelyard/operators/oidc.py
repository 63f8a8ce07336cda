"""Single sign-on for operators through the organisation's OpenID Connect provider.

Two ways in, both ending in an :class:`OidcIdentity` whose roles come from the user's groups
(``oidc_role_map``); :meth:`OperatorAccounts.login_oidc` then records the login:

* the console: :meth:`OidcClient.begin` sends the browser to the provider (authorization code
  with PKCE S256, ``state`` and ``nonce``), :meth:`OidcClient.finish` takes the redirect back;
* the CLI: :meth:`OidcClient.start_device` and :meth:`OidcClient.poll_device`, the device
  flow (RFC 8628), when the provider offers it.

The provider is found through discovery on first use. Tokens, codes and the client secret
are never logged nor put in an error message.

The protocol pieces are authlib's (the authorization request and the PKCE challenge, the ID
token claim checks) and joserfc's (signatures); the HTTP is httpx's, one client per exchange.
Next to this module: ``oidc_config`` (settings), ``oidc_discovery`` (metadata and keys),
``oidc_http`` (requests and their failures), ``oidc_claims`` (the ID token and the identity),
``oidc_flows`` (the state a login carries between its steps).
"""

from __future__ import annotations

import hmac
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc.jwk import KeySet

from modelyard.errors import InvalidInput, Unauthorized
from modelyard.operators.oidc_claims import (
    OidcIdentity,
    UnknownSigningKey,
    has_claim,
    identity,
    invalid,
    verify_id_token,
)
from modelyard.operators.oidc_config import OidcConfig, parse_role_map
from modelyard.operators.oidc_discovery import ProviderMetadata, discover, fetch_keys
from modelyard.operators.oidc_flows import (
    LOGIN_TTL,
    DeviceLogin,
    PendingLogin,
    device_expired,
    device_login_from,
    provider_error,
)
from modelyard.operators.oidc_http import get_json, post_form, unavailable
from modelyard.store.tables import utcnow

__all__ = [
    "DeviceLogin",
    "OidcClient",
    "OidcConfig",
    "OidcIdentity",
    "PendingLogin",
    "parse_role_map",
]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP_S = 5
"""RFC 8628 section 3.5: after ``slow_down`` every later poll waits this much longer."""
Clock = Callable[[], datetime]


class OidcClient:
    """Logs operators in through one provider; safe to share between threads."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        clock: Clock = utcnow,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._transport = transport
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None

    # -- the provider ----------------------------------------------------------------------

    @contextmanager
    def _http(self) -> Iterator[httpx.Client]:
        """A client for one exchange with the provider: no redirects followed, and a timeout.
        Like any httpx client it honours ``HTTPS_PROXY`` and ``SSL_CERT_FILE`` (a private CA);
        ``transport`` is a fake, in tests."""
        with httpx.Client(
            timeout=self.config.timeout_s,
            follow_redirects=False,
            transport=self._transport,
            verify=self._tls,
        ) as http:
            yield http

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        """httpx's CA certificates, loaded once rather than per exchange (a tenth of a second)."""
        return httpx.create_ssl_context()

    def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (fetched once, with its keys)."""
        with self._lock:
            if self._metadata is None:
                with self._http() as http:
                    metadata = discover(http, self.config)
                    self._keys = fetch_keys(http, metadata, self.config)
                self._metadata = metadata
            return self._metadata

    def _signing_keys(self, *, refresh: bool) -> KeySet:
        metadata = self.metadata()
        with self._lock:
            if refresh or self._keys is None:
                with self._http() as http:
                    self._keys = fetch_keys(http, metadata, self.config)
            return self._keys

    # -- the console: authorization code with PKCE ------------------------------------------

    def begin(self, redirect_uri: str | None = None) -> PendingLogin:
        """A new browser login: send the browser to ``PendingLogin.url`` and keep the rest
        (sealed) until the provider sends it back to ``redirect_uri``."""
        redirect_uri = redirect_uri or self.config.redirect_url
        if not redirect_uri:
            raise InvalidInput("no redirect URL for the OIDC login", param="oidc_redirect_url")
        metadata = self.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        url = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self.config.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=" ".join(self.config.scopes),
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return PendingLogin(str(url), state, nonce, verifier, redirect_uri, self.clock())

    def finish(self, pending: PendingLogin, params: Mapping[str, str]) -> OidcIdentity:
        """Who logged in, from the query the provider redirected back with; Unauthorized
        for a stale or forged redirect, a refusal by the provider or a bad ID token."""
        if self.clock() - pending.created_at > LOGIN_TTL:
            raise Unauthorized("the login took too long; start again", code="oidc_expired")
        state = params.get("state", "")
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise Unauthorized(
                "the login's state does not match this browser; start again", code="oidc_state"
            )
        metadata = self.metadata()
        issuer = params.get("iss")
        if (issuer is not None or metadata.iss_in_authorization_response) and (
            issuer != self.config.issuer
        ):
            raise Unauthorized("the login came back from another issuer", code="oidc_issuer")
        if "error" in params:
            raise provider_error(
                params["error"], params.get("error_description"), doing="the login"
            )
        code = params.get("code")
        if not code:
            raise Unauthorized("the provider sent no authorization code", code="oidc_no_code")
        tokens = self._token_request(
            metadata,
            doing="the authorization code",
            grant_type="authorization_code",
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.code_verifier,
        )
        return self._identity(metadata, tokens, nonce=pending.nonce)

    # -- the CLI: the device flow (RFC 8628) ------------------------------------------------

    def start_device(self) -> DeviceLogin:
        """A device login to show the user; InvalidInput when the provider has no device flow."""
        metadata = self.metadata()
        endpoint = metadata.device_authorization_endpoint
        if endpoint is None:
            raise InvalidInput(
                f"the OIDC provider {self.config.issuer} offers no device login; log in "
                "through the console instead",
                code="oidc_no_device_flow",
            )
        scope = " ".join(self.config.scopes)
        with self._http() as http:
            body = post_form(http, endpoint, {"scope": scope}, self.config, "device login")
        self._refuse_client(body)
        if "error" in body:
            raise provider_error(
                body["error"], body.get("error_description"), doing="the device login"
            )
        return device_login_from(body, self.config, self.clock())

    def poll_device(
        self,
        device: DeviceLogin,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
    ) -> OidcIdentity:
        """Wait for the user to approve ``device``, then who they are.

        Polls every ``interval`` seconds (longer after ``slow_down``) until the provider
        answers, the user denies (Unauthorized), or the code expires (Unauthorized)."""
        clock = clock or self.clock
        metadata = self.metadata()
        interval = device.interval
        while True:
            sleep(interval)
            if clock() >= device.expires_at:
                raise device_expired()
            try:
                tokens = self._token_request(
                    metadata,
                    doing="the device login",
                    grant_type=DEVICE_GRANT,
                    device_code=device.device_code,
                )
            except Unauthorized as refusal:
                if refusal.code == "oidc_authorization_pending":
                    continue
                if refusal.code == "oidc_slow_down":
                    interval += SLOW_DOWN_STEP_S
                    continue
                if refusal.code == "oidc_expired_token":
                    raise device_expired() from refusal
                raise
            return self._identity(metadata, tokens, nonce=None)

    # -- tokens to identity -----------------------------------------------------------------

    def _token_request(
        self, metadata: ProviderMetadata, *, doing: str, **form: str
    ) -> dict[str, Any]:
        """The token endpoint's answer; its OAuth errors as Unauthorized (``oidc_<error>``)."""
        with self._http() as http:
            body = post_form(http, metadata.token_endpoint, form, self.config, "token")
        self._refuse_client(body)
        if "error" in body:
            raise provider_error(body["error"], body.get("error_description"), doing=doing)
        if not isinstance(body.get("access_token"), str):
            raise unavailable(self.config, "answered a token request with no access token")
        return body

    def _refuse_client(self, body: Mapping[str, Any]) -> None:
        """A provider that does not accept modelyard's client is misconfigured, which the
        person logging in cannot fix: Unavailable, naming the settings to check."""
        if body.get("error") in ("invalid_client", "unauthorized_client"):
            raise unavailable(
                self.config,
                f"does not accept client {self.config.client_id!r} for this login "
                f"({body['error']}): check oidc_client_id, oidc_client_secret and the "
                "client's grant types at the provider",
            )

    def _identity(
        self, metadata: ProviderMetadata, tokens: Mapping[str, Any], *, nonce: str | None
    ) -> OidcIdentity:
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise invalid("the provider sent none (is 'openid' among the scopes?)")
        access_token = tokens.get("access_token")
        access = access_token if isinstance(access_token, str) else None
        claims = self._verified_claims(metadata, id_token, nonce, access)
        wanted = (self.config.username_claim, self.config.groups_claim)
        missing = not all(has_claim(claims, name) for name in wanted)
        if missing and metadata.userinfo_endpoint and access:
            claims = {**self._userinfo(metadata.userinfo_endpoint, access, claims["sub"]), **claims}
        return identity(claims, self.config)

    def _verified_claims(
        self,
        metadata: ProviderMetadata,
        id_token: str,
        nonce: str | None,
        access_token: str | None,
    ) -> dict[str, Any]:
        """The ID token's claims; its keys are fetched again once if it names an unknown one
        (the provider rotated its keys)."""
        now = int(self.clock().timestamp())
        for refresh in (False, True):
            keys = self._signing_keys(refresh=refresh)
            try:
                return verify_id_token(
                    id_token,
                    keys=keys,
                    algorithms=metadata.id_token_algorithms,
                    config=self.config,
                    nonce=nonce,
                    access_token=access_token,
                    now=now,
                )
            except UnknownSigningKey:
                continue
        raise invalid("it is signed with a key the provider does not publish")

    def _userinfo(self, endpoint: str, access_token: str, subject: str) -> dict[str, Any]:
        """The userinfo claims (for a provider that keeps groups out of the ID token)."""
        with self._http() as http:
            claims = get_json(http, endpoint, self.config, "userinfo", bearer=access_token)
        if claims.get("sub") != subject:
            raise Unauthorized("the provider's userinfo is about another user", code="oidc_claims")
        return claims
