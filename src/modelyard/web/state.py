"""What the console keeps for the life of the app: templates, sealing key, drafts, clocks.

One :class:`ConsoleState` per app (``app.state.console``), made by
:func:`modelyard.web.console.install_console`; nothing is kept in module globals. Tests
swap the clock to expire sessions without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import jinja2
from starlette.requests import Request

from modelyard.config import Settings
from modelyard.gateway.state import Gateway
from modelyard.operators.accounts import OperatorAccounts
from modelyard.operators.oidc import OidcClient, OidcConfig
from modelyard.operators.sessions import OperatorSessions
from modelyard.store.tables import utcnow
from modelyard.web.drafts import Drafts
from modelyard.web.sealing import Sealer


@dataclass
class TokenRates:
    """Generated tokens per second, per model, between two looks at the gateway's counter
    (the engines page polls, so each look measures the time since the last)."""

    monotonic: Callable[[], float] = time.monotonic
    _last: dict[str, tuple[float, float]] = field(default_factory=dict)

    def update(self, totals: dict[str, float]) -> dict[str, float | None]:
        now = self.monotonic()
        rates: dict[str, float | None] = {}
        for model, total in totals.items():
            before = self._last.get(model)
            rates[model] = None
            if before is not None and now > before[0] and total >= before[1]:
                rates[model] = (total - before[1]) / (now - before[0])
            self._last[model] = (now, total)
        return rates


@dataclass
class ConsoleState:
    settings: Settings
    templates: jinja2.Environment
    sealer: Sealer
    clock: Callable[[], datetime] = utcnow
    rates: TokenRates = field(default_factory=TokenRates)
    oidc_transport: httpx.BaseTransport | None = None
    """How the OIDC client reaches the provider (None: the network; tests may swap it)."""
    _oidc: OidcClient | None = None

    @property
    def drafts(self) -> Drafts:
        return Drafts(self.settings.home, self.sealer, lambda: self.clock())

    def oidc_client(self) -> OidcClient | None:
        """The OIDC client (it caches the provider's metadata), or None when OIDC is not
        configured."""
        if self._oidc is None:
            config = OidcConfig.from_settings(self.settings)
            if config is None:
                return None
            self._oidc = OidcClient(
                config, clock=lambda: self.clock(), transport=self.oidc_transport
            )
        return self._oidc


def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def sessions_of(request: Request) -> OperatorSessions:
    gateway = gateway_of(request)
    return OperatorSessions(
        gateway.db, gateway.settings, clock=lambda: console_state(request).clock()
    )


def accounts_of(request: Request) -> OperatorAccounts:
    gateway = gateway_of(request)
    return OperatorAccounts(
        gateway.db, gateway.settings, clock=lambda: console_state(request).clock()
    )
