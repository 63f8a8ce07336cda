"""The console framework: closed by default, security headers, CSRF, roles (with their audit
record), drafts kept across an expired session, flashes, errors as HTML, sealing."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelyard.config import Settings
from modelyard.web.auth import safe_next
from modelyard.web.console import page_routes
from modelyard.web.drafts import keepable
from modelyard.web.sealing import Sealer, secret_path
from modelyard.web.security import CONTENT_SECURITY_POLICY
from tests.web.conftest import PASSWORD, ConsoleClient, ConsoleClock, audit_events, login

EXPECTED_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def _concrete(path: str) -> str:
    """A route path with its parameters filled in."""
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_console_page_is_closed_without_a_session(console_app: FastAPI) -> None:
    routes = [route for name, route in page_routes() if name != "login"]
    assert len(routes) > 10
    client = TestClient(console_app, follow_redirects=False)
    for route in routes:
        for method in route.methods - {"HEAD"}:
            answer = client.request(method, _concrete(route.path))
            assert answer.status_code == 303, (method, route.path, answer.status_code)
            assert answer.headers["location"].startswith("/console/login?next="), route.path


def test_the_api_still_wants_a_bearer_key(console_app: FastAPI) -> None:
    client = TestClient(console_app)
    answer = client.get("/v1/models")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "missing_api_key"
    assert "content-security-policy" not in answer.headers


def test_security_headers_on_every_console_answer(
    console_app: FastAPI, admin_client: ConsoleClient
) -> None:
    anonymous = TestClient(console_app, follow_redirects=False)
    answers = [
        anonymous.get("/console/login"),
        anonymous.get("/console/models"),  # a redirect
        anonymous.get("/console/static/console.css"),
        admin_client.get("/console"),
        admin_client.get("/console/no-such-page"),
        admin_client.post("/console/advisories", data={}),  # refused: no CSRF token
    ]
    for answer in answers:
        for name, value in EXPECTED_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.url, name)
    assert answers[0].headers["cache-control"] == "no-store"
    assert answers[4].status_code == 404 and "text/html" in answers[4].headers["content-type"]
    assert "There is no such page" in answers[4].text


def test_no_inline_scripts_or_styles(admin_client: ConsoleClient) -> None:
    """The CSP forbids them: a page that had one would break in the browser."""
    for path in ("/console", "/console/models", "/console/aliases", "/console/engines"):
        html = admin_client.get(path).text
        assert "<script>" not in html and "style=" not in html and "<style" not in html
        assert re.search(r"\son[a-z]+=", html) is None, path


def test_a_post_without_the_csrf_token_is_refused(
    admin_client: ConsoleClient, console_app: FastAPI
) -> None:
    fields = {"ref": "x@1", "advisory_id": "CVE-1", "severity": "low", "action": "warn"}
    missing = admin_client.post("/console/advisories", data=fields)
    assert missing.status_code == 403 and "security token" in missing.text
    wrong = admin_client.post("/console/advisories", data={**fields, "csrf_token": "forged"})
    assert wrong.status_code == 403
    assert audit_events(console_app, "advisory.add") == []


def test_a_viewer_forging_a_post_gets_403_and_an_audit_record(
    viewer_client: ConsoleClient, console_app: FastAPI
) -> None:
    answer = viewer_client.submit(
        "/console/aliases", {"alias": "chat", "target": "m@1", "reason": "forged"}
    )
    assert answer.status_code == 403
    assert "needs role" in answer.text and "text/html" in answer.headers["content-type"]
    denied = audit_events(console_app, "access.denied")
    assert len(denied) == 1
    record = denied[0]
    assert record["actor"] == viewer_client.operator
    assert record["target"] == "/console/aliases"
    assert record["details"]["action"] == "aliases.change"
    assert record["details"]["method"] == "POST"
    assert audit_events(console_app, "alias.set") == []


def test_nav_shows_what_the_role_may_use(
    viewer_client: ConsoleClient, admin_client: ConsoleClient
) -> None:
    viewer = viewer_client.get("/console").text
    admin = admin_client.get("/console").text
    for href in ("/console/models", "/console/approvals", "/console/engines", "/console/usage"):
        assert f'href="{href}"' in viewer and f'href="{href}"' in admin
    for href in ("/console/keys", "/console/teams", "/console/audit"):
        assert f'href="{href}"' not in viewer and f'href="{href}"' in admin
    assert 'aria-current="page">Home' in admin


def test_an_expired_session_keeps_what_was_typed(
    console_app: FastAPI,
    console_client: Callable[..., ConsoleClient],
    console_clock: ConsoleClock,
    console_home: Settings,
) -> None:
    client = console_client("operator")
    client.follow_redirects = False
    console_clock.advance(hours=2)  # past the idle expiry
    typed = {
        "ref": "gemma@1",
        "advisory_id": "CVE-2026-1",
        "severity": "high",
        "action": "block",
        "summary": "tokenizer overflow",
        "password": "never kept",
    }
    answer = client.submit(
        "/console/advisories", typed, headers={"referer": "http://testserver/console/advisories"}
    )
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.path == "/console/login"
    query = parse_qs(location.query)
    assert query["next"] == ["/console/advisories"]
    draft = query["draft"][0]
    stored = (console_home.home / "console-drafts" / draft).read_text()
    assert "tokenizer" not in stored  # sealed at rest
    kept = Sealer(console_home.home).open("form-draft", stored, now=console_clock())
    assert kept["action"] == "/console/advisories"
    assert set(kept["fields"]) == {"ref", "advisory_id", "severity", "action", "summary"}
    assert stat.S_IMODE((console_home.home / "console-drafts").stat().st_mode) == 0o700

    client.follow_redirects = True
    back = login(client, client.operator, PASSWORD, next="/console/advisories", draft=draft)
    assert back.status_code == 200 and back.url.path == "/console/advisories"
    html = back.text
    assert 'value="CVE-2026-1"' in html and "tokenizer overflow</textarea>" in html
    assert 'value="block" selected' in html and "filled in again" in html
    assert "never kept" not in html
    again = client.get(f"/console/advisories?draft={draft}").text
    assert 'value="CVE-2026-1"' not in again  # a draft is read once


def test_an_expired_session_on_a_get_returns_to_the_page(
    console_client: Callable[..., ConsoleClient], console_clock: ConsoleClock
) -> None:
    client = console_client("viewer")
    console_clock.advance(hours=9)  # past the hard expiry
    client.follow_redirects = False
    answer = client.get("/console/models?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=%2Fconsole%2Fmodels%3Fx%3D1"


def test_draft_fields_never_keep_secrets() -> None:
    assert keepable("reason") and keepable("summary") and keepable("key_name")
    for name in ("csrf_token", "password", "new_password", "totp", "client_secret", "token"):
        assert not keepable(name)


def test_flash_shows_once(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    from tests.lifecycle.helpers import add_version

    add_version(console_app.state.gateway.registry, "m")
    answer = admin_client.submit(
        "/console/advisories",
        {"ref": "m@1", "advisory_id": "ADV-1", "severity": "low", "action": "warn"},
    )
    assert answer.status_code == 200 and "Advisory ADV-1 raised" in answer.text
    assert "Advisory ADV-1 raised" not in admin_client.get("/console/advisories").text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/models?x=1", "/console/models?x=1"),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/v1/models", "/console"),
        ("/console/login?next=/console", "/console"),
        ("/console\\@evil", "/console"),
        ("", "/console"),
    ],
)
def test_next_stays_in_the_console(target: str, expected: str) -> None:
    assert safe_next(target) == expected


def test_sealing(console_home: Settings, console_clock: ConsoleClock) -> None:
    sealer = Sealer(console_home.home)
    now = console_clock()
    token = sealer.seal("flash", ["hello"], expires_at=now + timedelta(minutes=1))
    assert sealer.open("flash", token, now=now) == ["hello"]
    assert sealer.open("draft", token, now=now) is None  # another purpose
    assert sealer.open("flash", token, now=now + timedelta(minutes=2)) is None  # expired
    assert (
        sealer.open("flash", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], now=now)
        is None
    )
    assert sealer.open("flash", "not base64 !", now=now) is None
    assert stat.S_IMODE(secret_path(console_home.home).stat().st_mode) == 0o600
    assert Sealer(console_home.home).open("flash", token, now=now) == ["hello"]  # same key


def test_home_summarises_the_catalog(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    from tests.lifecycle.helpers import add_version

    registry = console_app.state.gateway.registry
    add_version(registry, "m")
    add_version(registry, "m")
    html = admin_client.get("/console").text
    assert "1 models, 2 versions" in html and 'id="pending-count">0 pending approvals' in html
    assert re.search(r"<td>registered</td><td class=\"num\">2</td>", html)
