"""``modelyard keys create`` with a team, scope, limits and PII policy."""

from __future__ import annotations

import json
from pathlib import Path

from modelyard.config import Settings
from modelyard.governance.keys import KeyStore
from modelyard.governance.teams import KeyPolicies
from modelyard.store.database import Database
from tests.governance.clirun import run_cli


def test_scoped_key_from_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_cli(home, "teams", "create", "clinic", "--pii", "redact")
    made = json.loads(
        run_cli(
            home,
            "keys",
            "create",
            "alice",
            "--team",
            "clinic",
            "--models",
            "chat,gemma3-270m",
            "--routes",
            "chat",
            "--expires",
            "30d",
            "--requests-per-minute",
            "5",
            "--tokens-per-minute",
            "1000",
            "--tokens-per-day",
            "20000",
            "--pii",
            "block",
            "--json",
        ).stdout
    )
    assert made["key"].startswith("my-") and made["team"] == "clinic"
    assert made["limits"] == {
        "requests_per_minute": 5,
        "tokens_per_minute": 1000,
        "tokens_per_day": 20000,
    }
    settings = Settings(home=home)
    db = Database(settings.resolved_database_url)
    try:
        assert KeyStore(db, settings).authenticate(made["key"]).key_name == "alice"
        access = KeyPolicies(db, settings).access("alice")
        assert access.pii_policy() == "block" and access.key_scope.routes == ("chat",)
        assert access.team_scope.pii == "redact"
    finally:
        db.close()
    no_team = run_cli(home, "keys", "create", "bob", "--team", "nope", ok=False)
    assert no_team.returncode == 1 and "no team 'nope'" in no_team.stderr
    bad_route = run_cli(home, "keys", "create", "bob", "--routes", "images", ok=False)
    assert bad_route.returncode == 1 and "unknown route" in bad_route.stderr
    dup = run_cli(home, "keys", "create", "alice", "--team", "clinic", ok=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    listed = json.loads(run_cli(home, "keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["alice"]  # nothing half-created by the refusals
    assert (listed[0]["team"], listed[0]["pii"], "key" in listed[0]) == ("clinic", "block", False)
    assert "clinic" in run_cli(home, "keys", "list").stdout
    plain = run_cli(home, "keys", "create", "carol")
    assert plain.stdout.strip().startswith("my-")
