"""``/console/keys``: list, create (secret once), limits and budgets, revoke; role checks."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from markupsafe import escape

from modelyard.catalog.names import validate_name
from modelyard.errors import InvalidInput, Unauthorized
from modelyard.gateway.state import Gateway
from modelyard.governance.teams import KeyPolicies, Teams
from tests.web.conftest import ConsoleClient, audit_events

SECRET = re.compile(r'id="key-secret"[^>]*value="(my-[^"]+)"')


def _gateway(app: FastAPI) -> Gateway:
    gateway: Gateway = app.state.gateway
    return gateway


def _create(client: ConsoleClient, name: str, **fields: str) -> str:
    answer = client.submit("/console/keys", {"name": name, **fields})
    assert answer.status_code == 200, answer.text
    found = SECRET.search(answer.text)
    assert found, answer.text
    return found.group(1)


def test_list_shows_keys_with_team_scope_and_limits(
    admin_client: ConsoleClient, console_app: FastAPI
) -> None:
    gateway = _gateway(console_app)
    Teams(gateway.db, gateway.settings).create("research", actor="tests")
    _create(admin_client, "ci-bot", team="research", tokens_per_day="1000", models="m1, m2")
    page = admin_client.get("/console/keys")
    assert page.status_code == 200
    row = page.text[page.text.index('id="key-ci-bot"') :]
    row = row[: row.index("</tr>")]
    assert "research" in row
    assert "models: m1, m2" in row
    assert "tokens per day (budget) 1,000" in row
    assert "never" in row  # not used yet


def test_new_key_form_renders(admin_client: ConsoleClient) -> None:
    page = admin_client.get("/console/keys/new")
    assert page.status_code == 200
    for field in ("name", "team", "models", "routes", "expires", "pii", "tokens_per_month"):
        assert f'name="{field}"' in page.text
        assert f'for="f-{field}"' in page.text
    assert 'min="0" step="1" inputmode="numeric"' in page.text


def test_create_shows_the_secret_once_and_is_audited(
    admin_client: ConsoleClient, console_app: FastAPI
) -> None:
    gateway = _gateway(console_app)
    answer = admin_client.submit(
        "/console/keys",
        {
            "name": "alice",
            "models": "gemma3-270m, chat",
            "routes": "chat",
            "tokens_per_day": "200000",
            "pii": "redact",
            "pilot": "on",
        },
    )
    assert answer.status_code == 200
    assert "no-store" in answer.headers["cache-control"]
    found = SECRET.search(answer.text)
    assert found
    secret = found.group(1)
    assert gateway.keys.authenticate(secret).key_name == "alice"
    policy = KeyPolicies(gateway.db, gateway.settings).get("alice")
    assert policy is not None
    assert policy.scope.models == ("gemma3-270m", "chat")
    assert policy.scope.routes == ("chat",)
    assert policy.scope.limits.tokens_per_day == 200000
    assert policy.scope.pii == "redact" and policy.scope.pilot
    [event] = audit_events(console_app, "key.create")
    assert event["actor"] == admin_client.operator
    assert event["target"] == "key:alice"
    assert secret not in str(event)
    for path in ("/console/keys", "/console/keys/alice", "/console/keys/alice/revoke"):
        assert secret not in admin_client.get(path).text


def test_bad_name_gets_the_api_error_and_keeps_the_typed_values(
    admin_client: ConsoleClient, console_app: FastAPI
) -> None:
    with pytest.raises(InvalidInput) as expected:
        validate_name("Bad Name", what="key name")
    answer = admin_client.submit("/console/keys", {"name": "Bad Name", "models": "gemma3-270m"})
    assert answer.status_code == 400
    assert str(escape(expected.value.message)) in answer.text
    assert 'value="gemma3-270m"' in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert _gateway(console_app).keys.list() == []


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"tokens_per_day": "-5"}, 400, "tokens per day (budget) must be a whole number"),
        ({"routes": "chat, teleport"}, 400, "unknown route &#39;teleport&#39;"),
        ({"pii": "shout"}, 400, "unknown PII policy"),
        ({"expires": "next tuesday"}, 400, "cannot read expiry"),
        ({"team": "nobody"}, 404, "no team &#39;nobody&#39;"),
        ({"name": ""}, 400, "a key needs a name"),
    ],
)
def test_invalid_fields_are_refused(
    admin_client: ConsoleClient,
    console_app: FastAPI,
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    answer = admin_client.submit("/console/keys", {"name": "k1", **fields})
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert _gateway(console_app).keys.list() == []


def test_duplicate_name_is_a_conflict(admin_client: ConsoleClient) -> None:
    _create(admin_client, "dup")
    answer = admin_client.submit("/console/keys", {"name": "dup"})
    assert answer.status_code == 409
    assert "already exists" in answer.text


def test_set_limits_and_budgets(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    gateway = _gateway(console_app)
    Teams(gateway.db, gateway.settings).create("ops", actor="tests")
    _create(admin_client, "bob")
    form = admin_client.get("/console/keys/bob")
    assert form.status_code == 200 and 'id="key-scope"' in form.text
    answer = admin_client.submit(
        "/console/keys/bob/scope",
        {"team": "ops", "tokens_per_month": "5000", "requests_per_minute": "60", "models": ""},
    )
    assert answer.status_code == 200
    assert "Saved the limits of key bob." in answer.text
    policy = KeyPolicies(gateway.db, gateway.settings).get("bob")
    assert policy is not None and policy.team == "ops"
    assert policy.scope.limits.tokens_per_month == 5000
    assert policy.scope.limits.requests_per_minute == 60
    [event] = audit_events(console_app, "key.policy.set")
    assert event["actor"] == admin_client.operator
    # the form shows the stored values again: saving it unchanged keeps them
    again = admin_client.get("/console/keys/bob")
    assert 'value="5000"' in again.text and 'value="60"' in again.text
    bad = admin_client.submit("/console/keys/bob/scope", {"tokens_per_day": "lots"})
    assert bad.status_code == 400 and 'value="lots"' in bad.text
    assert KeyPolicies(gateway.db, gateway.settings).get("bob") == policy


def test_limits_of_a_missing_key_are_not_found(admin_client: ConsoleClient) -> None:
    assert admin_client.get("/console/keys/ghost").status_code == 404
    assert admin_client.submit("/console/keys/ghost/scope", {}).status_code == 404


def test_revoke_needs_confirmation_and_is_audited(
    admin_client: ConsoleClient, console_app: FastAPI
) -> None:
    gateway = _gateway(console_app)
    secret = _create(admin_client, "carol")
    confirm = admin_client.get("/console/keys/carol/revoke")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.text
    refused = admin_client.submit("/console/keys/carol/revoke", {})
    assert refused.status_code == 400
    assert gateway.keys.get("carol").active
    answer = admin_client.submit("/console/keys/carol/revoke", {"confirm": "yes"})
    assert answer.status_code == 200
    assert "Revoked key carol." in answer.text
    assert not gateway.keys.get("carol").active
    with pytest.raises(Unauthorized):
        gateway.keys.authenticate(secret)
    [event] = audit_events(console_app, "key.revoke")
    assert event["actor"] == admin_client.operator and event["target"] == "key:carol"


def test_viewer_may_not_see_or_change_keys(
    viewer_client: ConsoleClient, console_app: FastAPI
) -> None:
    gateway = _gateway(console_app)
    gateway.keys.create("target", created_by="tests", actor="tests")
    assert viewer_client.get("/console/keys").status_code == 403
    forged = viewer_client.submit("/console/keys", {"name": "mine", "admin": "on"})
    assert forged.status_code == 403
    revoke = viewer_client.submit("/console/keys/target/revoke", {"confirm": "yes"})
    assert revoke.status_code == 403
    scope = viewer_client.submit("/console/keys/target/scope", {"tokens_per_day": "1"})
    assert scope.status_code == 403
    assert [k.name for k in gateway.keys.list()] == ["target"]
    assert gateway.keys.get("target").active
    assert KeyPolicies(gateway.db, gateway.settings).get("target") is None
    denied = audit_events(console_app, "access.denied")
    posts = [d for d in denied if d["details"]["method"] == "POST"]
    assert {d["target"] for d in posts} == {
        "/console/keys",
        "/console/keys/target/revoke",
        "/console/keys/target/scope",
    }
    assert all(d["actor"] == viewer_client.operator for d in posts)
    assert all(d["details"]["action"] == "keys.manage" for d in posts)


def test_post_without_csrf_token_is_refused(
    admin_client: ConsoleClient, console_app: FastAPI
) -> None:
    answer = admin_client.post("/console/keys", data={"name": "sneaky"})
    assert answer.status_code == 403
    assert _gateway(console_app).keys.list() == []
