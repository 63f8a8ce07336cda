"""Operator sessions (hashed tokens, expiry, idle, revocation), roles and actor strings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from modelyard.config import Settings
from modelyard.errors import Forbidden, InvalidInput, NotFound
from modelyard.operators.accounts import OperatorAccounts
from modelyard.operators.principal import (
    Operator,
    is_authenticated_person,
    os_operator,
    real_identity,
)
from modelyard.operators.roles import ACTIONS, Role, allows, parse_roles
from modelyard.operators.sessions import OperatorSessions, token_digest
from modelyard.store.database import Database
from modelyard.store.operator_tables import OperatorSessionRow

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(sqlite_settings: Settings) -> Iterator[Database]:
    sqlite_settings.ensure_home()
    database = Database(sqlite_settings.resolved_database_url)
    yield database
    database.close()


def test_session_lifecycle(db: Database, sqlite_settings: Settings) -> None:
    clock = Clock()
    OperatorAccounts(db, sqlite_settings).create(
        "alice", {Role.OPERATOR}, password=PASSWORD, actor="os:root"
    )
    alice = Operator("alice", frozenset({Role.OPERATOR}), "local")
    sessions = OperatorSessions(db, sqlite_settings, clock=clock)
    issued = sessions.issue(alice, "console")
    with db.session() as session:
        row = session.get(OperatorSessionRow, issued.id)
        assert row is not None and row.token_sha256 == token_digest(issued.token)
        assert issued.token not in (row.token_sha256, row.csrf_token)
    active = sessions.resolve(issued.token)
    assert active is not None and active.operator.name == "alice"
    assert active.csrf_token == issued.csrf_token
    assert sessions.resolve(issued.token + "x") is None
    assert sessions.resolve("not-a-token") is None
    # idle: a console session unused for longer than the idle limit ends
    clock.now += timedelta(minutes=sqlite_settings.operator_session_idle_minutes + 1)
    assert sessions.resolve(issued.token) is None
    # a CLI token is bounded by its age only
    cli = sessions.issue(alice, "cli")
    clock.now += timedelta(hours=sqlite_settings.operator_session_hours - 1)
    assert sessions.resolve(cli.token) is not None
    clock.now += timedelta(hours=2)
    assert sessions.resolve(cli.token) is None
    fresh = sessions.issue(alice, "cli")
    sessions.revoke(fresh.token)
    assert sessions.resolve(fresh.token) is None
    with pytest.raises(NotFound):
        sessions.revoke(fresh.token)


def test_disabling_an_operator_ends_their_sessions(db: Database, sqlite_settings: Settings) -> None:
    accounts = OperatorAccounts(db, sqlite_settings)
    accounts.create("bob", {Role.APPROVER}, password=PASSWORD, actor="os:root")
    sessions = OperatorSessions(db, sqlite_settings)
    issued = sessions.issue(accounts.login_password("bob", PASSWORD), "console")
    assert sessions.resolve(issued.token) is not None
    accounts.update("bob", actor="os:root", disabled=True)
    assert sessions.resolve(issued.token) is None
    accounts.update("bob", actor="os:root", disabled=False)
    assert sessions.resolve(issued.token) is None  # revoked for good, not just hidden


def test_roles_allow_what_the_table_says() -> None:
    assert allows({Role.VIEWER}, "catalog.read")
    assert not allows({Role.VIEWER}, "aliases.change")
    assert allows({Role.OPERATOR}, "lifecycle.propose")
    assert not allows({Role.OPERATOR}, "lifecycle.promote")
    assert allows({Role.APPROVER}, "lifecycle.promote")
    assert not allows({Role.APPROVER}, "keys.manage")
    assert allows({Role.AUDITOR}, "audit.read") and not allows({Role.AUDITOR}, "audit.erase")
    assert all(allows({Role.ADMIN}, name) for name in ACTIONS)
    with pytest.raises(Forbidden, match="needs role admin"):
        Operator("v", frozenset({Role.VIEWER}), "local").require("keys.manage")
    assert parse_roles("operator, approver") == {Role.OPERATOR, Role.APPROVER}
    with pytest.raises(InvalidInput, match="unknown role"):
        parse_roles("operator,root")
    with pytest.raises(InvalidInput):
        parse_roles("")


def test_actor_strings_tell_people_from_os_users_keys_and_impersonations() -> None:
    assert os_operator("root").actor == "os:root"
    assert not os_operator("root").authenticated
    assert is_authenticated_person("alice")
    assert not is_authenticated_person("os:root")
    assert not is_authenticated_person("key:ci")
    impersonated = "alice (impersonated by os:root)"
    assert not is_authenticated_person(impersonated)
    assert real_identity(impersonated) == "os:root"
    assert real_identity("alice") == "alice"
    bob_as_alice = Operator("alice", frozenset({Role.ADMIN}), "local", impersonated_by="bob")
    assert bob_as_alice.actor == "alice (impersonated by bob)"
    assert not bob_as_alice.authenticated
