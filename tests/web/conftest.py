"""Console fixtures: an in-process gateway app on a tmp home, and logged-in clients.

* ``console_home``: the Settings of a fresh tmp home (SQLite).
* ``console_app``: the gateway app (``create_app``) with the fake engines, its lifespan
  running; ``console_app.state.gateway`` is the Gateway (registry, keys, …).
* ``console_clock``: the console's clock (sessions, drafts, flashes): ``advance(minutes=…)``.
* ``console_client(role, name=None)``: a :class:`ConsoleClient` logged in through the login
  form as a new operator with ``role`` (a role name, a Role, or several); ``admin_client`` and
  ``viewer_client`` are two of them.

A ConsoleClient is a Starlette TestClient (it follows redirects) that knows its operator,
password and CSRF token: ``client.submit(url, {...})`` posts a form with the token added.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.audit.query import Filter, iter_records
from modelyard.config import Settings
from modelyard.engines.fake import FakeEngine, FakeEngines
from modelyard.gateway.app import create_app
from modelyard.gateway.state import Gateway
from modelyard.operators.accounts import OperatorAccounts
from modelyard.operators.roles import Role, parse_roles
from modelyard.store.tables import utcnow

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
LOGIN_CSRF_FIELD = re.compile(r'name="login_csrf" value="([^"]+)"')


@dataclass
class ConsoleClock:
    """A clock the test moves: starts at the real time, never asserted on."""

    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class ConsoleClient(TestClient):
    operator: str
    password: str
    csrf: str

    def refresh_csrf(self, path: str = "/console") -> str:
        """Read the session's CSRF token from a page's forms."""
        response = self.get(path)
        found = CSRF_FIELD.search(response.text)
        assert found, f"no CSRF field on {path} ({response.status_code})"
        self.csrf = found.group(1)
        return self.csrf

    def submit(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        """POST a form with the session's CSRF token."""
        return self.post(url, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)


def login(client: TestClient, name: str, password: str, **fields: str) -> httpx.Response:
    """Log ``client`` in through the login form (the real flow); the final response."""
    form = client.get("/console/login", params={k: v for k, v in fields.items() if k != "totp"})
    token = LOGIN_CSRF_FIELD.search(form.text)
    assert token, form.text
    data = {"name": name, "password": password, "login_csrf": token.group(1), **fields}
    return client.post("/console/login", data=data)


def audit_events(app: FastAPI, event: str) -> list[dict[str, Any]]:
    """The audit log's ``event`` records (``access.denied``, ``alias.set``…), oldest first."""
    gateway: Gateway = app.state.gateway
    records = iter_records(gateway.db, Filter(kind="event"))
    return [r for r in records if (r["details"] or {}).get("event") == event]


@pytest.fixture
def console_home(tmp_path: Path, database_url: str) -> Settings:
    """The console's home, on each store (``database_url``: SQLite and PostgreSQL)."""
    settings = Settings(home=tmp_path / "home", probe_timeout_s=20, database_url=database_url)
    settings.ensure_home()
    return settings


@pytest.fixture
def console_clock() -> ConsoleClock:
    return ConsoleClock()


@contextmanager
def running_console(
    settings: Settings, clock: ConsoleClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FastAPI]:
    """The gateway app on ``settings`` with the fake engines (no llama-server binary needed,
    nothing loads), its lifespan running while the block runs."""
    monkeypatch.setattr(
        "modelyard.gateway.state.pool_from_settings",
        lambda _settings, _blobs: FakeEngines(lambda _version: FakeEngine()),
    )
    app = create_app(settings, gateway=Gateway.open(settings))
    app.state.console.clock = clock
    with TestClient(app):  # runs the lifespan (start and close)
        yield app


@pytest.fixture
def console_app(
    console_home: Settings, console_clock: ConsoleClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FastAPI]:
    with running_console(console_home, console_clock, monkeypatch) as app:
        yield app


@pytest.fixture
def console_client(console_app: FastAPI) -> Iterator[Callable[..., ConsoleClient]]:
    gateway: Gateway = console_app.state.gateway
    accounts = OperatorAccounts(gateway.db, gateway.settings)
    counter = itertools.count(1)
    made: list[ConsoleClient] = []

    def make(role: str | Role | Iterable[str | Role], name: str | None = None) -> ConsoleClient:
        roles = parse_roles([role] if isinstance(role, str | Role) else list(role))
        name = name or f"{'-'.join(sorted(r.value for r in roles))}{next(counter)}"
        accounts.create(name, roles, password=PASSWORD, actor="tests")
        client = ConsoleClient(console_app)
        client.operator, client.password = name, PASSWORD
        answer = login(client, name, PASSWORD)
        assert answer.status_code == 200, answer.text
        client.refresh_csrf()
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def admin_client(console_client: Callable[..., ConsoleClient]) -> ConsoleClient:
    return console_client("admin")


@pytest.fixture
def viewer_client(console_client: Callable[..., ConsoleClient]) -> ConsoleClient:
    return console_client("viewer")


def run(coroutine: Any) -> Any:
    """Run a coroutine from a sync test."""
    return asyncio.run(coroutine)
