"""The state a login carries between its steps: a browser login and a device (CLI) login.

A browser login's state travels in a sealed cookie between :meth:`OidcClient.begin` and
:meth:`OidcClient.finish`; it holds secrets (the PKCE verifier, the nonce), so its ``repr``
leaves them out, and :meth:`PendingLogin.from_json` checks every field it reads back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.errors import Unauthorized
from modelyard.operators.oidc_config import OidcConfig
from modelyard.operators.oidc_http import unavailable

LOGIN_TTL = timedelta(minutes=10)
"""A browser login not finished within this time must start again."""
DEFAULT_DEVICE_INTERVAL_S = 5
"""RFC 8628 section 3.2: the polling interval when the provider names none."""
MAX_DEVICE_INTERVAL_S = 60
"""A provider asking for slower polling than this is polled once a minute all the same."""
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


@dataclass(frozen=True)
class PendingLogin:
    """A browser login between the redirect to the provider and the way back."""

    url: str = field(repr=False)
    """Where to send the browser: the provider's authorization endpoint with this login's
    state, nonce and PKCE challenge."""
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    redirect_uri: str
    created_at: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "url": self.url,
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PendingLogin:
        """The login that :meth:`to_json` wrote; Unauthorized for anything else."""
        names = ("url", "state", "nonce", "code_verifier", "redirect_uri", "created_at")
        values = {name: data.get(name) for name in names}
        if not all(isinstance(v, str) and v for v in values.values()):
            raise Unauthorized("the login's saved state is damaged; start again", code="oidc_state")
        try:
            created = datetime.fromisoformat(str(values.pop("created_at")))
        except ValueError as error:
            raise Unauthorized(
                "the login's saved state is damaged; start again", code="oidc_state"
            ) from error
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return cls(created_at=created, **{k: str(v) for k, v in values.items()})


@dataclass(frozen=True)
class DeviceLogin:
    """A device (CLI) login: show ``user_code`` and ``verification_uri`` to the user, who
    approves it in a browser anywhere, then :meth:`OidcClient.poll_device`."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    device_code: str = field(repr=False)
    interval: int
    expires_in: int
    created_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.created_at + timedelta(seconds=self.expires_in)


def provider_error(error: object, description: object, *, doing: str) -> Unauthorized:
    """The provider's refusal (an OAuth ``error`` and its description) as Unauthorized.

    Both come from outside: the code is kept only if it looks like one, and the description
    is cut short and stripped of control characters before it reaches a message."""
    name = str(error) if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "error"
    text = ""
    if isinstance(description, str) and description.strip():
        clean = "".join(c if c.isprintable() else " " for c in description.strip())
        text = f": {clean[:200]}"
    return Unauthorized(
        f"the identity provider refused {doing} ({name}){text}", code=f"oidc_{name}"
    )


def device_login_from(body: Mapping[str, Any], config: OidcConfig, now: datetime) -> DeviceLogin:
    """The device authorization response (RFC 8628 section 3.2) as a DeviceLogin."""
    fields = ("device_code", "user_code", "verification_uri")
    if not all(isinstance(body.get(f), str) and body[f] for f in fields):
        raise unavailable(config, "answered a device authorization without its codes")
    interval, expires_in = body.get("interval", DEFAULT_DEVICE_INTERVAL_S), body.get("expires_in")
    if not isinstance(interval, int) or interval < 1:
        interval = DEFAULT_DEVICE_INTERVAL_S
    interval = min(interval, MAX_DEVICE_INTERVAL_S)
    if not isinstance(expires_in, int) or expires_in < 1:
        raise unavailable(config, "answered a device authorization with no expiry")
    complete = body.get("verification_uri_complete")
    return DeviceLogin(
        user_code=body["user_code"],
        verification_uri=body["verification_uri"],
        verification_uri_complete=complete if isinstance(complete, str) else None,
        device_code=body["device_code"],
        interval=interval,
        expires_in=expires_in,
        created_at=now,
    )


def device_expired() -> Unauthorized:
    return Unauthorized(
        "the device login expired before it was approved; start again", code="oidc_expired_token"
    )
