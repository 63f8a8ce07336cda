"""Local operator accounts: argon2 passwords, TOTP, lockout, and every change audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, Unauthorized
from modelyard.operators.accounts import LOCKOUT_AFTER, OperatorAccounts
from modelyard.operators.passwords import totp_now
from modelyard.operators.roles import Role
from modelyard.store.database import Database

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(sqlite_settings: Settings) -> Iterator[Database]:
    sqlite_settings.ensure_home()
    database = Database(sqlite_settings.resolved_database_url)
    yield database
    database.close()


def events(db: Database, settings: Settings | None = None) -> list[tuple[str, str, str]]:
    rows = iter_records(db, Filter(kind="event"))
    return [(r["details"]["event"], r["actor"], r["target"]) for r in rows]


def test_password_login_and_audit(db: Database, sqlite_settings: Settings) -> None:
    clock = Clock()
    accounts = OperatorAccounts(db, sqlite_settings, clock=clock)
    accounts.create("alice", {Role.OPERATOR}, password=PASSWORD, actor="os:root")
    operator = accounts.login_password("alice", PASSWORD)
    assert operator.name == "alice" and operator.roles == {Role.OPERATOR}
    assert operator.authenticated and operator.actor == "alice"
    with pytest.raises(Unauthorized, match="wrong operator name, password or code"):
        accounts.login_password("alice", "not the password")
    with pytest.raises(Unauthorized, match="wrong operator name, password or code"):
        accounts.login_password("nobody", PASSWORD)
    got = events(db, sqlite_settings)
    assert ("operator.create", "os:root", "operator:alice") in got
    assert ("operator.login", "alice", "operator:alice") in got
    assert got.count(("operator.login_failed", "anonymous", "operator:alice")) == 1
    assert ("operator.login_failed", "anonymous", "operator:nobody") in got
    assert accounts.get("alice").last_login_at is not None


@pytest.mark.real_argon2
def test_the_hash_is_argon2id_and_weak_passwords_are_refused(
    db: Database, sqlite_settings: Settings
) -> None:
    from modelyard.store.operator_tables import OperatorRow

    accounts = OperatorAccounts(db, sqlite_settings)
    with pytest.raises(InvalidInput, match="at least 12"):
        accounts.create("bob", {Role.VIEWER}, password="short", actor="os:root")
    accounts.create("bob", {Role.VIEWER}, password=PASSWORD, actor="os:root")
    with db.session() as session:
        stored = session.get(OperatorRow, "bob")
        assert stored is not None and stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert PASSWORD not in stored.password_hash
    with pytest.raises(Conflict):
        accounts.create("bob", {Role.VIEWER}, password=PASSWORD, actor="os:root")
    with pytest.raises(InvalidInput, match="invalid operator name"):
        accounts.create("os:bob", {Role.VIEWER}, password=PASSWORD, actor="os:root")


def test_totp_is_required_once_enrolled_and_works_once(
    db: Database, sqlite_settings: Settings
) -> None:
    clock = Clock()
    accounts = OperatorAccounts(db, sqlite_settings, clock=clock)
    accounts.create("carol", {Role.ADMIN}, password=PASSWORD, actor="os:root")
    enrolment = accounts.enrol_totp("carol", actor="os:root")
    assert enrolment.uri.startswith("otpauth://totp/modelyard:carol")
    with pytest.raises(Unauthorized):
        accounts.login_password("carol", PASSWORD)  # no code
    code = totp_now(enrolment.secret, clock.now)
    assert accounts.login_password("carol", PASSWORD, totp=code).name == "carol"
    with pytest.raises(Unauthorized):
        accounts.login_password("carol", PASSWORD, totp=code)  # replayed
    clock.now += timedelta(seconds=30)
    assert (
        accounts.login_password("carol", PASSWORD, totp=totp_now(enrolment.secret, clock.now)).name
        == "carol"
    )
    reasons = [e for e in events(db, sqlite_settings) if e[0] == "operator.login_failed"]
    assert len(reasons) == 2


def test_lockout_after_repeated_failures(db: Database, sqlite_settings: Settings) -> None:
    clock = Clock()
    accounts = OperatorAccounts(db, sqlite_settings, clock=clock)
    accounts.create("dave", {Role.VIEWER}, password=PASSWORD, actor="os:root")
    for _ in range(LOCKOUT_AFTER):
        with pytest.raises(Unauthorized):
            accounts.login_password("dave", "wrong password!")
    with pytest.raises(Unauthorized, match="too many failed logins"):
        accounts.login_password("dave", PASSWORD)  # right password, but locked
    clock.now += timedelta(minutes=16)
    assert accounts.login_password("dave", PASSWORD).name == "dave"


def test_disabled_operator_cannot_log_in_and_roles_change(
    db: Database, sqlite_settings: Settings
) -> None:
    accounts = OperatorAccounts(db, sqlite_settings)
    accounts.create("erin", {Role.VIEWER}, password=PASSWORD, actor="os:root")
    accounts.update("erin", actor="os:root", roles={Role.APPROVER, Role.AUDITOR})
    assert accounts.login_password("erin", PASSWORD).roles == {Role.APPROVER, Role.AUDITOR}
    accounts.update("erin", actor="os:root", disabled=True)
    with pytest.raises(Unauthorized):
        accounts.login_password("erin", PASSWORD)


def test_oidc_login_makes_the_account_and_follows_groups(
    db: Database, sqlite_settings: Settings
) -> None:
    accounts = OperatorAccounts(db, sqlite_settings)
    first = accounts.login_oidc("sub-1", "Frank", frozenset({Role.OPERATOR}), issuer="https://idp")
    assert first.name == "frank" and first.method == "oidc" and first.authenticated
    again = accounts.login_oidc("sub-1", "frank", frozenset({Role.APPROVER}), issuer="https://idp")
    assert again.roles == {Role.APPROVER}
    with pytest.raises(Conflict, match="belongs to another account"):
        accounts.login_oidc("sub-2", "frank", frozenset({Role.ADMIN}), issuer="https://idp")
    with pytest.raises(Unauthorized, match="no group"):
        accounts.login_oidc("sub-3", "gina", frozenset(), issuer="https://idp")
    failed = [e for e in events(db, sqlite_settings) if e[0] == "operator.login_failed"]
    assert {e[2] for e in failed} == {"operator:frank", "operator:gina"}
