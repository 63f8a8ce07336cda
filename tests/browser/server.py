"""The console for the browser tests: a real gateway app (fake engines) served by uvicorn on
127.0.0.1, signing in through a real OIDC provider (tests/oidc_provider.py).

The provider matches the redirect URI exactly, and that URI names the console's port. So
the console's socket is bound first (port 0: the kernel picks, nothing can take it in
between), the provider is started with the callback on that port, and only then is the app
made and served on the socket it already holds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from modelyard.config import Settings
from modelyard.engines.fake import FakeEngine, FakeEngines
from modelyard.gateway.app import create_app
from modelyard.gateway.state import Gateway
from tests.browser.seed import seed
from tests.oidc_provider import ROLE_MAP, RunningProvider, running_provider
from tests.web.conftest import ConsoleClock

START_DEADLINE_S = 60.0


@dataclass(frozen=True)
class RunningConsole:
    url: str
    """``http://127.0.0.1:PORT`` (the console is under ``/console``)."""
    app: FastAPI
    clock: ConsoleClock
    provider: RunningProvider
    api_key: str = field(repr=False)

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_on(app: FastAPI, sock: socket.socket) -> Iterator[None]:
    """Serve ``app`` on the bound ``sock`` in a thread (uvicorn runs the app's lifespan)."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_DEADLINE_S
    try:
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the console did not start"
            time.sleep(0.05)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sso_settings(home: Path, provider: RunningProvider, redirect_uri: str) -> Settings:
    """A fresh home (SQLite) whose console signs in through ``provider``."""
    settings = Settings(
        home=home,
        probe_timeout_s=20,
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_redirect_url=redirect_uri,
        oidc_role_map=ROLE_MAP,
    )
    settings.ensure_home()
    return settings


@contextmanager
def running_console(root: Path) -> Iterator[RunningConsole]:
    """The console with single sign-on and the seeded catalog (tests/browser/seed.py), for
    the length of a ``with`` block; everything lives under ``root``."""
    sock = _bound_socket()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        callback = f"{url}/console/auth/callback"
        with (
            running_provider(root / "provider.log", redirect_uris=(callback,)) as provider,
            pytest.MonkeyPatch.context() as patch,
        ):
            patch.setattr(
                "modelyard.gateway.state.pool_from_settings",
                lambda _settings, _blobs: FakeEngines(lambda _version: FakeEngine()),
            )
            settings = sso_settings(root / "home", provider, callback)
            gateway = Gateway.open(settings)
            seeded = seed(gateway)
            app = create_app(settings, gateway=gateway)
            clock = ConsoleClock()
            app.state.console.clock = clock
            with serve_on(app, sock):
                yield RunningConsole(url, app, clock, provider, seeded.api_key)
    finally:
        sock.close()
