"""OIDC login against a real provider (``oidc-provider`` under node, tests/oidc_provider.py):
the browser login with PKCE through the provider's own login and consent pages, the device
login of the CLI, and what is refused. Nothing on the provider's side is mocked.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from modelyard.config import Settings
from modelyard.errors import InvalidInput, Unauthorized, Unavailable
from modelyard.operators.accounts import OperatorAccounts
from modelyard.operators.oidc import (
    OidcClient,
    OidcConfig,
    OidcIdentity,
    PendingLogin,
    parse_role_map,
)
from modelyard.operators.oidc_claims import identity, read_groups, read_username
from modelyard.operators.oidc_config import check_issuer
from modelyard.operators.oidc_flows import LOGIN_TTL, provider_error
from modelyard.operators.roles import Role
from modelyard.store.database import Database
from tests import oidc_provider
from tests.oidc_provider import (
    USERS,
    Browser,
    RunningProvider,
    approve_device,
    authorize,
    page,
    redirect_query,
    running_provider,
)

ISSUER = "https://idp.example.test"
real_provider = pytest.mark.slow
"""Together the tests against the node provider take longer than the fast loop should."""


def config(**changes: Any) -> OidcConfig:
    base = OidcConfig(issuer=ISSUER, client_id="modelyard", role_map=parse_role_map("ops=operator"))
    return dataclasses.replace(base, **changes)


# -- configuration: fast, no provider -----------------------------------------------------


def test_role_map_adds_up_the_roles_of_a_repeated_group() -> None:
    roles = parse_role_map(" ml-admins=admin, ml-ops=operator ,ml-admins=auditor,, ")
    assert dict(roles) == {
        "ml-admins": {Role.ADMIN, Role.AUDITOR},
        "ml-ops": {Role.OPERATOR},
    }
    cfg = config(role_map=roles)
    assert cfg.roles_for(["ml-ops", "staff"]) == {Role.OPERATOR}
    assert cfg.roles_for(["ml-admins", "ml-ops"]) == {Role.ADMIN, Role.AUDITOR, Role.OPERATOR}
    assert cfg.roles_for(["staff"]) == frozenset()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("ml-admins=root", "root"),
        ("ml-admins=admin,ops=Operator", "Operator"),
        ("ml-admins", "'ml-admins' is not GROUP=ROLE"),
        ("=admin", "'=admin' is not GROUP=ROLE"),
        ("ops=", "'ops=' is not GROUP=ROLE"),
    ],
)
def test_role_map_refuses_what_it_cannot_read(text: str, named: str) -> None:
    with pytest.raises(InvalidInput, match=named) as caught:
        parse_role_map(text)
    assert caught.value.param == "oidc_role_map"


@pytest.mark.parametrize(
    "issuer",
    [
        "https://idp.example.test",
        "https://idp.example.test/realms/ml",
        "http://127.0.0.1:8080",
        "http://127.0.0.2",
        "http://localhost:5556/dex",
        "http://[::1]:9000",
    ],
)
def test_https_issuers_and_loopback_http_are_accepted(issuer: str) -> None:
    assert check_issuer(issuer) == issuer


@pytest.mark.parametrize(
    ("issuer", "why"),
    [
        ("http://idp.example.test", "must use https"),
        ("http://10.0.0.5:8080", "must use https"),
        ("http://localhost.example.test", "must use https"),
        ("ftp://idp.example.test", "absolute https"),
        ("idp.example.test", "absolute https"),
        ("https://idp.example.test?tenant=1", "no query or fragment"),
        ("https://idp.example.test#x", "no query or fragment"),
        ("https://user:pw@idp.example.test", "user name or password"),
    ],
)
def test_other_issuers_are_refused(issuer: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_issuer(issuer)


def test_settings_make_the_config(tmp_path: Path) -> None:
    assert OidcConfig.from_settings(Settings(home=tmp_path)) is None
    settings = Settings(
        home=tmp_path,
        oidc_issuer=ISSUER,
        oidc_client_id="modelyard",
        oidc_client_secret="s3cret",
        oidc_scopes="openid profile groups",
        oidc_role_map="ml-admins=admin",
    )
    cfg = OidcConfig.from_settings(settings)
    assert cfg is not None
    assert cfg.scopes == ("openid", "profile", "groups")
    assert cfg.roles_for(["ml-admins"]) == {Role.ADMIN}
    assert "s3cret" not in repr(cfg)


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"oidc_client_id": None}, "oidc_client_id"),
        ({"oidc_role_map": ""}, "oidc_role_map"),
        ({"oidc_role_map": "ml-admins=superuser"}, "oidc_role_map"),
        ({"oidc_scopes": "profile email"}, "oidc_scopes"),
        ({"oidc_issuer": "http://idp.example.test"}, "oidc_issuer"),
    ],
)
def test_settings_that_would_not_work_are_refused(
    tmp_path: Path, changes: dict[str, Any], param: str
) -> None:
    values = {
        "oidc_issuer": ISSUER,
        "oidc_client_id": "modelyard",
        "oidc_role_map": "ml-admins=admin",
        **changes,
    }
    with pytest.raises(InvalidInput) as caught:
        OidcConfig.from_settings(Settings(home=tmp_path, **values))
    assert caught.value.param == param


# -- claims and saved state: fast, no provider ----------------------------------------------


def test_claims_read_from_the_id_token_with_fallbacks() -> None:
    cfg = config(groups_claim="realm_access.roles", role_map=parse_role_map("ops=operator"))
    claims = {"sub": "u-1", "email": "Erin@Example.test", "realm_access": {"roles": ["ops"]}}
    who = identity(claims, cfg)
    assert who == OidcIdentity(
        issuer=ISSUER,
        subject="u-1",
        username="Erin@Example.test",
        email="Erin@Example.test",
        groups=frozenset({"ops"}),
        roles=frozenset({Role.OPERATOR}),
    )
    assert read_username({"sub": "u-2"}, "preferred_username") == "u-2"
    assert read_username({"sub": "u-2", "preferred_username": " erin "}, "preferred_username") == (
        "erin"
    )
    assert read_groups({"groups": "ops"}, "groups") == {"ops"}
    assert read_groups({}, "groups") == frozenset()
    with pytest.raises(Unauthorized, match="not a list of group names"):
        read_groups({"groups": [1, 2]}, "groups")


def test_pending_login_survives_json_and_hides_its_secrets() -> None:
    pending = PendingLogin(
        url="https://idp.example.test/auth?state=state-value",
        state="state-value",
        nonce="nonce-value",
        code_verifier="verifier-value",
        redirect_uri="https://modelyard.example.test/console/auth/callback",
        created_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    )
    assert PendingLogin.from_json(json.loads(json.dumps(pending.to_json()))) == pending
    shown = repr(pending)
    assert not {"verifier-value", "nonce-value", "state-value"} & set(re.findall(r"[\w-]+", shown))
    damaged = {**pending.to_json(), "created_at": "yesterday"}
    with pytest.raises(Unauthorized, match="damaged"):
        PendingLogin.from_json(damaged)
    with pytest.raises(Unauthorized, match="damaged"):
        PendingLogin.from_json({"state": "state-value"})


def test_provider_errors_are_told_but_not_parroted() -> None:
    refusal = provider_error("access_denied", "no\x1b[31m access " + "x" * 500, doing="the login")
    assert refusal.code == "oidc_access_denied"
    assert "\x1b" not in refusal.message and len(refusal.message) < 300
    assert provider_error("<script>", None, doing="the login").code == "oidc_error"


# -- a provider that is down, missing, or has no device login: fast, no node --------------


def test_a_provider_not_installed_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc_provider, "PROVIDER_DIR", tmp_path)
    with (
        pytest.raises(RuntimeError, match=r"run `npm ci --prefix tests/oidc`"),
        running_provider(tmp_path / "provider.log"),
    ):
        pass


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A port that is bound but not listening, so that a connection to it is refused."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_an_unreachable_provider_is_unavailable(unused_port: int) -> None:
    client = OidcClient(config(issuer=f"http://127.0.0.1:{unused_port}", timeout_s=5))
    with pytest.raises(Unavailable, match="cannot be reached") as caught:
        client.begin("https://modelyard.example.test/console/auth/callback")
    assert caught.value.http_status == 503


def test_device_login_from_a_provider_without_it_is_refused() -> None:
    """Only discovery is faked here: a provider whose document names no device endpoint."""

    def provider(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/auth",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                },
            )
        if request.url.path == "/jwks":
            key = ECKey.generate_key("P-256", private=False)
            return httpx.Response(200, json={"keys": [key.as_dict(private=False)]})
        return httpx.Response(404)

    client = OidcClient(config(), transport=httpx.MockTransport(provider))
    with pytest.raises(InvalidInput, match="offers no device login"):
        client.start_device()


# -- against the real provider --------------------------------------------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with running_provider(log) as running:
        yield running


@pytest.fixture
def client(provider: RunningProvider) -> OidcClient:
    return OidcClient(provider.config())


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser() as b:
        yield b


@pytest.fixture
def db(sqlite_settings: Settings) -> Iterator[Database]:
    database = Database(sqlite_settings.resolved_database_url)
    yield database
    database.close()


@real_provider
def test_browser_login_with_pkce_gives_the_identity_and_roles(
    client: OidcClient, browser: Browser
) -> None:
    pending = client.begin()
    assert "code_challenge_method=S256" in pending.url and pending.code_verifier not in pending.url
    query = authorize(browser, pending.url, USERS["alice"])
    # the console keeps the pending login in a cookie between the two requests
    kept = PendingLogin.from_json(json.loads(json.dumps(pending.to_json())))
    who = client.finish(kept, query)
    assert who == OidcIdentity(
        issuer=client.config.issuer,
        subject="alice",
        username="alice",
        email="alice@example.test",
        groups=frozenset({"ml-operators", "staff"}),
        roles=frozenset({Role.OPERATOR}),
    )


@real_provider
def test_a_group_can_carry_several_roles(client: OidcClient, browser: Browser) -> None:
    pending = client.begin()
    who = client.finish(pending, authorize(browser, pending.url, USERS["carol"]))
    assert who.roles == {Role.ADMIN, Role.AUDITOR}


@real_provider
def test_the_login_is_recorded_as_an_operator(
    client: OidcClient, browser: Browser, db: Database, sqlite_settings: Settings
) -> None:
    pending = client.begin()
    who = client.finish(pending, authorize(browser, pending.url, USERS["bob"]))
    accounts = OperatorAccounts(db, sqlite_settings)
    operator = accounts.login_oidc(who.subject, who.username, who.roles, issuer=who.issuer)
    assert operator.name == "bob" and operator.method == "oidc"
    assert operator.roles == {Role.APPROVER}


@real_provider
def test_a_user_in_no_mapped_group_is_refused(
    client: OidcClient, browser: Browser, db: Database, sqlite_settings: Settings
) -> None:
    pending = client.begin()
    who = client.finish(pending, authorize(browser, pending.url, USERS["dave"]))
    assert who.groups == {"finance"} and who.roles == frozenset()
    accounts = OperatorAccounts(db, sqlite_settings)
    with pytest.raises(Unauthorized, match="no group that maps") as caught:
        accounts.login_oidc(who.subject, who.username, who.roles, issuer=who.issuer)
    assert caught.value.code == "no_role"
    assert not accounts.exists()


@real_provider
def test_a_wrong_password_gets_no_further_than_the_login_page(
    client: OidcClient, browser: Browser
) -> None:
    pending = client.begin()
    login = page(browser.open(pending.url))
    again = page(browser.submit(login, action="/login", fill={"login": "alice", "password": "no"}))
    assert "wrong login or password" in again.text


@real_provider
def test_a_forged_state_is_refused_before_the_code_is_used(
    client: OidcClient, browser: Browser
) -> None:
    pending = client.begin()
    query = authorize(browser, pending.url, USERS["alice"])
    with pytest.raises(Unauthorized, match="state does not match") as caught:
        client.finish(pending, {**query, "state": "forged"})
    assert caught.value.code == "oidc_state"
    assert client.finish(pending, query).username == "alice"  # the code was not spent


@real_provider
def test_a_replayed_code_is_refused(client: OidcClient, browser: Browser) -> None:
    pending = client.begin()
    query = authorize(browser, pending.url, USERS["alice"])
    client.finish(pending, query)
    with pytest.raises(Unauthorized) as caught:
        client.finish(pending, query)
    assert caught.value.code == "oidc_invalid_grant"
    assert query["code"] not in caught.value.message


@real_provider
def test_a_nonce_that_does_not_match_is_refused(client: OidcClient, browser: Browser) -> None:
    pending = client.begin()
    query = authorize(browser, pending.url, USERS["alice"])
    tampered = dataclasses.replace(pending, nonce="another-login")
    with pytest.raises(Unauthorized, match="ID token is not valid") as caught:
        client.finish(tampered, query)
    assert caught.value.code == "oidc_id_token"


@real_provider
def test_a_wrong_code_verifier_is_refused_by_the_provider(
    client: OidcClient, browser: Browser
) -> None:
    pending = client.begin()
    query = authorize(browser, pending.url, USERS["alice"])
    tampered = dataclasses.replace(pending, code_verifier="x" * 64)
    with pytest.raises(Unauthorized) as caught:
        client.finish(tampered, query)
    assert caught.value.code == "oidc_invalid_grant"


@real_provider
def test_a_redirect_naming_another_issuer_is_refused(client: OidcClient, browser: Browser) -> None:
    pending = client.begin()
    query = authorize(browser, pending.url, USERS["alice"])
    with pytest.raises(Unauthorized, match="another issuer"):
        client.finish(pending, {**query, "iss": "https://evil.example.test"})


@real_provider
def test_a_login_left_too_long_is_refused(provider: RunningProvider) -> None:
    moment = [datetime(2026, 1, 5, 9, 0, tzinfo=UTC)]
    client = OidcClient(provider.config(), clock=lambda: moment[0])
    pending = client.begin()
    moment[0] += LOGIN_TTL + timedelta(seconds=1)
    with pytest.raises(Unauthorized, match="took too long"):
        client.finish(pending, {"state": pending.state, "code": "irrelevant"})


@real_provider
def test_a_wrong_client_secret_is_a_fault_that_never_shows_the_secret(
    provider: RunningProvider, browser: Browser
) -> None:
    wrong = "not-the-secret-0d9e"
    client = OidcClient(dataclasses.replace(provider.config(), client_secret=wrong))
    pending = client.begin()
    query = authorize(browser, pending.url, USERS["alice"])
    with pytest.raises(Unavailable, match="does not accept client 'modelyard'") as caught:
        client.finish(pending, query)
    assert wrong not in caught.value.message and query["code"] not in caught.value.message


@real_provider
def test_the_user_denying_consent_is_the_providers_refusal(
    client: OidcClient, browser: Browser
) -> None:
    pending = client.begin()
    login = page(browser.open(pending.url))
    user = USERS["alice"]
    consent = page(
        browser.submit(login, action="/login", fill={"login": user.name, "password": user.password})
    )
    assert "Authorize" in consent.text and "groups" in consent.text
    query = redirect_query(browser.submit(consent, action="/abort"))
    assert query["error"] == "access_denied"
    with pytest.raises(Unauthorized, match="the user denied the request") as caught:
        client.finish(pending, query)
    assert caught.value.code == "oidc_access_denied"


@real_provider
def test_discovery_refuses_an_issuer_that_is_not_exactly_the_providers(
    provider: RunningProvider,
) -> None:
    cfg = dataclasses.replace(provider.config(), issuer=provider.issuer + "/")
    with pytest.raises(InvalidInput, match="set oidc_issuer to exactly its issuer"):
        OidcClient(cfg).begin()


# -- the device login ------------------------------------------------------------------------


@pytest.fixture
def device_client(provider: RunningProvider) -> OidcClient:
    return OidcClient(provider.config(public=True))


@real_provider
def test_device_login_approved_in_the_browser(device_client: OidcClient, browser: Browser) -> None:
    device = device_client.start_device()
    assert device.verification_uri.startswith(device_client.config.issuer)
    assert device.device_code not in repr(device)
    done = approve_device(browser, device, USERS["bob"])
    assert "Sign-in Success" in done.text
    waited: list[float] = []
    who = device_client.poll_device(device, sleep=waited.append)
    assert who.username == "bob" and who.roles == {Role.APPROVER}
    assert waited == [device.interval]


@real_provider
def test_device_login_waits_and_slows_down_as_told(
    device_client: OidcClient, provider: RunningProvider
) -> None:
    device = device_client.start_device()
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 3:  # the user approves while the CLI waits
            with Browser() as elsewhere:
                approve_device(elsewhere, device, USERS["alice"])

    who = device_client.poll_device(device, sleep=sleep)
    assert who.username == "alice"
    # pending, then polled again at once: the provider said slow_down, so 5 s more
    assert waited == [5, 5, 10]


@real_provider
def test_device_login_denied_in_the_browser(device_client: OidcClient, browser: Browser) -> None:
    device = device_client.start_device()
    approve_device(browser, device, USERS["alice"], deny=True)
    with pytest.raises(Unauthorized) as caught:
        device_client.poll_device(device, sleep=lambda _: None)
    assert caught.value.code == "oidc_access_denied"


@real_provider
def test_device_login_gives_up_when_the_code_expires(device_client: OidcClient) -> None:
    device = device_client.start_device()
    moment = [device.created_at]

    def sleep(seconds: float) -> None:
        moment[0] += timedelta(seconds=seconds)

    with pytest.raises(Unauthorized, match="expired") as caught:
        device_client.poll_device(device, sleep=sleep, clock=lambda: moment[0])
    assert caught.value.code == "oidc_expired_token"
    assert moment[0] >= device.expires_at
