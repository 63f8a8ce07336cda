"""Logging in and out of the console: local accounts (password, TOTP), the cookie's flags,
the login form's own CSRF check, logout, and single sign-on through a real OIDC provider."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.config import Settings
from modelyard.operators.accounts import OperatorAccounts
from modelyard.operators.passwords import totp_now
from modelyard.operators.roles import Role
from tests.web.conftest import (
    LOGIN_CSRF_FIELD,
    PASSWORD,
    ConsoleClient,
    ConsoleClock,
    audit_events,
    login,
    running_console,
)


def _accounts(app: FastAPI) -> OperatorAccounts:
    gateway = app.state.gateway
    return OperatorAccounts(gateway.db, gateway.settings)


def _set_cookie(answer: object, name: str) -> str:
    headers = answer.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    found = [h for h in headers if h.startswith(f"{name}=")]
    assert found, headers
    return str(found[0])


def test_login_page_is_a_labelled_form(console_app: FastAPI) -> None:
    html = TestClient(console_app).get("/console/login").text
    for field_id in ("login-name", "login-password", "login-totp"):
        assert f'<label for="{field_id}">' in html and f'id="{field_id}"' in html
    assert 'class="skip-link" href="#main"' in html
    assert "Sign in with" not in html  # no OIDC configured


def test_login_sets_a_locked_down_session_cookie(console_app: FastAPI) -> None:
    _accounts(console_app).create("alice", [Role.OPERATOR], password=PASSWORD, actor="tests")
    client = TestClient(console_app, follow_redirects=False)
    answer = login(client, "alice", PASSWORD, next="/console/models")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/models"
    cookie = _set_cookie(answer, "modelyard_session")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    assert client.get("/console/models").status_code == 200
    logins = audit_events(console_app, "operator.login")
    assert logins[-1]["actor"] == "alice" and logins[-1]["details"]["via"] == "console"


def test_the_cookie_is_secure_behind_tls(console_app: FastAPI) -> None:
    _accounts(console_app).create("alice", [Role.VIEWER], password=PASSWORD, actor="tests")
    client = TestClient(console_app, base_url="https://testserver", follow_redirects=False)
    answer = login(client, "alice", PASSWORD)
    assert "Secure" in _set_cookie(answer, "modelyard_session")


def test_secure_cookies_can_be_forced(
    console_home: Settings, console_clock: ConsoleClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = console_home.model_copy(update={"console_secure_cookies": True})
    with running_console(settings, console_clock, monkeypatch) as app:
        client = TestClient(app, follow_redirects=False)
        form = client.get("/console/login")
        assert "Secure" in _set_cookie(form, "modelyard_login")


def test_a_wrong_password_is_refused_and_audited(console_app: FastAPI) -> None:
    _accounts(console_app).create("alice", [Role.VIEWER], password=PASSWORD, actor="tests")
    client = TestClient(console_app, follow_redirects=False)
    answer = login(client, "alice", "not the password")
    assert answer.status_code == 401
    assert "wrong operator name, password or code" in answer.text
    assert 'value="alice"' in answer.text and "not the password" not in answer.text
    assert "modelyard_session=" not in " ".join(answer.headers.get_list("set-cookie"))
    failed = audit_events(console_app, "operator.login_failed")
    assert failed[-1]["details"]["reason"] == "wrong password"


def test_the_login_form_needs_its_own_token(console_app: FastAPI) -> None:
    _accounts(console_app).create("alice", [Role.VIEWER], password=PASSWORD, actor="tests")
    client = TestClient(console_app, follow_redirects=False)
    answer = client.post(
        "/console/login", data={"name": "alice", "password": PASSWORD, "login_csrf": "x"}
    )
    assert answer.status_code == 403 and "security token" in answer.text
    assert audit_events(console_app, "operator.login") == []


def test_totp_is_asked_for_when_enrolled(console_app: FastAPI, console_clock: ConsoleClock) -> None:
    accounts = _accounts(console_app)
    accounts.create("alice", [Role.VIEWER], password=PASSWORD, actor="tests")
    secret = accounts.enrol_totp("alice", actor="tests").secret
    client = TestClient(console_app, follow_redirects=False)
    assert login(client, "alice", PASSWORD).status_code == 401
    code = totp_now(secret, console_clock())
    assert login(client, "alice", PASSWORD, totp=code).status_code == 303


def test_logout_ends_the_session(
    console_client: Callable[..., ConsoleClient], console_app: FastAPI
) -> None:
    client = console_client("viewer")
    token = client.cookies.get("modelyard_session")
    assert token
    client.follow_redirects = False
    refused = client.post("/console/logout")
    assert refused.status_code == 403  # no CSRF token: still logged in
    answer = client.submit("/console/logout")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    assert 'modelyard_session=""' in _set_cookie(answer, "modelyard_session")
    shown = client.get("/console/login")
    assert "logged out" in shown.text
    # the old token no longer works, even when a browser sends it again
    stale = TestClient(console_app, follow_redirects=False, cookies={"modelyard_session": token})
    assert stale.get("/console").status_code == 303
    assert audit_events(console_app, "operator.logout")[-1]["actor"] == client.operator


def test_a_logged_in_operator_skips_the_login_form(
    console_client: Callable[..., ConsoleClient],
) -> None:
    client = console_client("viewer")
    client.follow_redirects = False
    answer = client.get("/console/login?next=/console/models")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/models"


def test_sign_on_routes_without_oidc(console_app: FastAPI) -> None:
    client = TestClient(console_app, follow_redirects=False)
    assert client.get("/console/auth/oidc").status_code == 404
    back = client.get("/console/auth/callback?code=x&state=y")
    assert back.status_code == 401 and "start again" in back.text


# -- single sign-on through a real provider (tests/oidc_provider.py) ----------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.oidc_provider import running_provider

    with running_provider(tmp_path_factory.mktemp("oidc") / "provider.log") as running:
        yield running


@pytest.fixture
def oidc_console(
    provider: object,
    console_home: Settings,
    console_clock: ConsoleClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FastAPI]:
    from tests.oidc_provider import ROLE_MAP

    settings = console_home.model_copy(
        update={
            "oidc_issuer": provider.issuer,  # type: ignore[attr-defined]
            "oidc_client_id": provider.client_id,  # type: ignore[attr-defined]
            "oidc_client_secret": provider.client_secret,  # type: ignore[attr-defined]
            "oidc_redirect_url": provider.redirect_uri,  # type: ignore[attr-defined]
            "oidc_role_map": ROLE_MAP,
        }
    )
    with running_console(settings, console_clock, monkeypatch) as app:
        yield app


def _sign_in(client: TestClient, provider: object, user: str, next: str) -> TestClient:
    """Start at the console, log in on the provider's pages, come back; the last answer."""
    from tests.oidc_provider import Browser, authorize

    start = client.get("/console/auth/oidc", params={"next": next})
    assert start.status_code == 303, start.text
    assert "HttpOnly" in _set_cookie(start, "modelyard_oidc")
    to_provider = start.headers["location"]
    query = parse_qs(urlsplit(to_provider).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
    with Browser() as browser:
        back = authorize(browser, to_provider, provider.users[user])  # type: ignore[attr-defined]
    return client.get("/console/auth/callback", params=back)  # type: ignore[return-value]


@pytest.mark.slow
def test_single_sign_on(oidc_console: FastAPI, provider: object) -> None:
    client = TestClient(oidc_console, follow_redirects=False)
    page = client.get("/console/login").text
    assert re.search(r'id="oidc-login" href="/console/auth/oidc\?next=', page)
    assert "Sign in with 127.0.0.1" in page
    answer = _sign_in(client, provider, "bob", "/console/approvals")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/approvals"
    assert "HttpOnly" in _set_cookie(answer, "modelyard_session")
    inbox = client.get("/console/approvals")
    assert inbox.status_code == 200 and 'id="operator-name">bob<' in inbox.text
    assert "(approver)" in inbox.text
    login_record = audit_events(oidc_console, "operator.login")[-1]
    assert login_record["actor"] == "bob" and login_record["details"]["via"] == "oidc"


@pytest.mark.slow
def test_single_sign_on_refusals(oidc_console: FastAPI, provider: object) -> None:
    client = TestClient(oidc_console, follow_redirects=False)
    nobody = _sign_in(client, provider, "dave", "/console")  # in no mapped group
    assert nobody.status_code == 401 and "no group that maps" in nobody.text
    assert "modelyard_session=" not in " ".join(nobody.headers.get_list("set-cookie"))
    # a redirect back that this browser did not start
    other = TestClient(oidc_console, follow_redirects=False)
    forged = other.get("/console/auth/callback", params={"code": "x", "state": "y"})
    assert forged.status_code == 401 and LOGIN_CSRF_FIELD.search(forged.text)
