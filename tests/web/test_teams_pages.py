"""``/console/teams``: list, create, change scope / limits / PII policy, delete; roles."""

from __future__ import annotations

from fastapi import FastAPI

from modelyard.gateway.state import Gateway
from modelyard.governance.teams import Teams
from tests.web.conftest import ConsoleClient, audit_events


def _teams(app: FastAPI) -> Teams:
    gateway: Gateway = app.state.gateway
    return Teams(gateway.db, gateway.settings)


def test_create_list_and_show(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    assert "No teams yet." in admin_client.get("/console/teams").text
    assert admin_client.get("/console/teams/new").status_code == 200
    answer = admin_client.submit(
        "/console/teams",
        {"name": "research", "pii": "redact", "tokens_per_month": "1000000", "models": "m1"},
    )
    assert answer.status_code == 200
    assert "Created team research." in answer.text
    assert 'id="team-scope"' in answer.text  # landed on the team's page
    team = _teams(console_app).get("research")
    assert team.scope.pii == "redact"
    assert team.scope.limits.tokens_per_month == 1000000
    assert team.scope.models == ("m1",)
    [event] = audit_events(console_app, "team.create")
    assert event["actor"] == admin_client.operator and event["target"] == "team:research"
    listing = admin_client.get("/console/teams").text
    assert 'id="team-research"' in listing and "PII: redact" in listing


def test_update_scope_limits_and_pii(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    _teams(console_app).create("ops", actor="tests")
    answer = admin_client.submit(
        "/console/teams/ops",
        {"pii": "block", "routes": "chat", "requests_per_minute": "30", "pilot": "on"},
    )
    assert answer.status_code == 200 and "Saved team ops." in answer.text
    team = _teams(console_app).get("ops")
    assert team.scope.pii == "block"
    assert team.scope.routes == ("chat",)
    assert team.scope.limits.requests_per_minute == 30
    assert team.scope.pilot
    [event] = audit_events(console_app, "team.update")
    assert event["actor"] == admin_client.operator
    bad = admin_client.submit("/console/teams/ops", {"routes": "teleport"})
    assert bad.status_code == 400 and "unknown route" in bad.text
    assert _teams(console_app).get("ops") == team


def test_invalid_and_duplicate_names(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    bad = admin_client.submit("/console/teams", {"name": "No Spaces", "pii": "block"})
    assert bad.status_code == 400
    assert "invalid team name" in bad.text
    assert 'value="No Spaces"' in bad.text
    _teams(console_app).create("taken", actor="tests")
    dup = admin_client.submit("/console/teams", {"name": "taken"})
    assert dup.status_code == 409
    assert [t.name for t in _teams(console_app).list()] == ["taken"]


def test_delete_needs_confirmation_and_no_keys(
    admin_client: ConsoleClient, console_app: FastAPI
) -> None:
    teams = _teams(console_app)
    teams.create("empty", actor="tests")
    teams.create("busy", actor="tests")
    made = admin_client.submit("/console/keys", {"name": "member", "team": "busy"})
    assert made.status_code == 200
    assert admin_client.get("/console/teams/empty/delete").status_code == 200
    assert admin_client.submit("/console/teams/empty/delete", {}).status_code == 400
    busy = admin_client.submit("/console/teams/busy/delete", {"confirm": "yes"})
    assert busy.status_code == 409 and "still has keys" in busy.text
    answer = admin_client.submit("/console/teams/empty/delete", {"confirm": "yes"})
    assert answer.status_code == 200 and "Deleted team empty." in answer.text
    assert [t.name for t in teams.list()] == ["busy"]
    [event] = audit_events(console_app, "team.delete")
    assert event["actor"] == admin_client.operator and event["target"] == "team:empty"
    assert admin_client.get("/console/teams/empty").status_code == 404


def test_viewer_forged_posts_are_refused_and_recorded(
    viewer_client: ConsoleClient, console_app: FastAPI
) -> None:
    _teams(console_app).create("kept", actor="tests")
    assert viewer_client.get("/console/teams").status_code == 403
    assert viewer_client.submit("/console/teams", {"name": "mine"}).status_code == 403
    assert viewer_client.submit("/console/teams/kept", {"pii": "off"}).status_code == 403
    deleted = viewer_client.submit("/console/teams/kept/delete", {"confirm": "yes"})
    assert deleted.status_code == 403
    assert [t.name for t in _teams(console_app).list()] == ["kept"]
    assert _teams(console_app).get("kept").scope.pii is None
    posts = [
        d for d in audit_events(console_app, "access.denied") if d["details"]["method"] == "POST"
    ]
    assert len(posts) == 3
    assert all(d["details"]["action"] == "teams.manage" for d in posts)
    assert all(d["actor"] == viewer_client.operator for d in posts)
