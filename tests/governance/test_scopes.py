"""Scopes, teams and key policies (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from modelyard.config import Settings
from modelyard.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from modelyard.governance.scopes import Access, Limits, Scope, parse_expiry, split_list
from modelyard.governance.teams import KeyPolicies, Teams
from modelyard.store.database import Database


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.resolved_database_url)
    yield database
    database.close()


def test_scope_denials_name_what_is_missing() -> None:
    access = Access(
        "alice",
        "research",
        key_scope=Scope(models=("chat", "gemma3-270m"), routes=("chat",)),
        team_scope=Scope(models=("chat",)),
    )
    access.check_route("chat")
    access.check_model(["chat", "gemma3-270m", "gemma3-270m@1"])
    with pytest.raises(Forbidden, match="key 'alice' may not use the embeddings route"):
        access.check_route("embeddings")
    with pytest.raises(Forbidden, match="key 'alice' lacks admin rights"):
        access.check_route("admin")
    with pytest.raises(Forbidden, match="key 'alice' may not use model 'llama'") as caught:
        access.check_model(["llama", "llama@2"])
    assert caught.value.http_status == 403 and caught.value.param == "model"
    with pytest.raises(Forbidden, match="team 'research' may not use model 'gemma3-270m'"):
        access.check_model(["gemma3-270m", "gemma3-270m@1"])
    Access("root", admin=True).check_route("admin")


def test_expiry_and_pii_strictness() -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(Unauthorized, match="the team expired"):
        Access("k", "t", team_scope=Scope(expires_at=past)).check_alive()
    Access("k", key_scope=Scope(expires_at=past + timedelta(days=1))).check_alive()
    p = Access("k", "t", key_scope=Scope(pii="redact-logs"), team_scope=Scope(pii="redact"))
    assert p.pii_policy() == "redact"
    assert Access("k").pii_policy(default="block") == "block"


def test_parsing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expiry("30d", now) == now + timedelta(days=30)
    assert parse_expiry("2027-01-01", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_expiry(None) is None
    with pytest.raises(InvalidInput):
        parse_expiry("soon")
    assert split_list(" a, b ,a") == ("a", "b")
    assert split_list("") is None
    with pytest.raises(InvalidInput, match="unknown route"):
        Scope(routes=("chat", "images"))
    with pytest.raises(InvalidInput, match="unknown PII policy"):
        Scope(pii="scramble")
    with pytest.raises(InvalidInput):
        Limits(tokens_per_day=-1)
    scope = Scope(("a",), ("chat",), now, "redact", Limits(requests_per_minute=3))
    assert Scope.from_json(scope.to_json()) == scope


def test_teams_and_key_policies(db: Database, settings: Settings) -> None:
    teams, policies = Teams(db, settings), KeyPolicies(db, settings)
    research = Scope(models=("chat",), limits=Limits(tokens_per_day=1000))
    teams.create("research", research, actor="tests")
    with pytest.raises(Conflict):
        teams.create("research", actor="tests")
    with pytest.raises(InvalidInput):
        teams.create("Bad Name", actor="tests")
    with pytest.raises(NotFound):
        policies.set("alice", "nope", Scope(), actor="tests")
    policies.set("alice", "research", Scope(routes=("chat",), pii="redact"), actor="tests")
    access = policies.access("alice")
    assert access.team == "research"
    assert access.team_scope.limits.tokens_per_day == 1000
    assert access.pii_policy() == "redact"
    assert policies.access("bob", admin=True) == Access("bob", admin=True)
    with pytest.raises(Conflict, match="still has keys"):
        teams.delete("research", actor="tests")
    policies.delete("alice", actor="tests")
    teams.update("research", Scope(), actor="tests")
    assert teams.get("research").scope == Scope()
    assert [t.name for t in teams.list()] == ["research"]
    teams.delete("research", actor="tests")
    with pytest.raises(NotFound):
        teams.get("research")
