"""Operator accounts: local ones (argon2 password, optional TOTP) and OIDC users, and logins.

Every change and every login attempt is written to the audit log by the method itself. A
failed attempt is recorded in a transaction of its own, so the record stays although the
attempt fails. After :data:`LOCKOUT_AFTER` failures in a row an account is locked for
:data:`LOCKOUT_MINUTES` minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.catalog.audit_events import append_event, audited
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, NotFound, Unauthorized
from modelyard.operators.passwords import (
    hash_password,
    new_totp_secret,
    totp_step,
    totp_uri,
    verify_password,
)
from modelyard.operators.principal import Method, Operator, check_operator_name
from modelyard.operators.roles import Role, sorted_roles
from modelyard.store.database import Database
from modelyard.store.operator_tables import OperatorRow
from modelyard.store.tables import utcnow

LOCKOUT_AFTER = 5
LOCKOUT_MINUTES = 15
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class OperatorAccount:
    name: str
    method: str
    roles: frozenset[Role]
    totp: bool
    disabled: bool
    created_by: str
    created_at: datetime
    last_login_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "roles": sorted_roles(self.roles),
            "totp": self.totp,
            "disabled": self.disabled,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    uri: str


def _account(row: OperatorRow) -> OperatorAccount:
    return OperatorAccount(
        name=row.name,
        method=row.method,
        roles=frozenset(Role(r) for r in row.roles),
        totp=row.totp_secret is not None,
        disabled=row.disabled,
        created_by=row.created_by,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    from datetime import UTC

    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


class OperatorAccounts:
    """Create, change and log in operators; every change is audited in its transaction."""

    def __init__(self, db: Database, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def _event(self, session: Session, kind: str, actor: str, name: str, **details: Any) -> None:
        append_event(session, self.db, self.settings, kind, actor, f"operator:{name}", details)

    def _row(self, session: Session, name: str) -> OperatorRow:
        row = session.get(OperatorRow, name)
        if row is None:
            raise NotFound(f"no operator {name!r}", param="name")
        return row

    # -- reading ---------------------------------------------------------------------------

    def get(self, name: str) -> OperatorAccount:
        with self.db.session() as session:
            return _account(self._row(session, name))

    def list(self) -> list[OperatorAccount]:
        with self.db.session() as session:
            rows = session.scalars(select(OperatorRow).order_by(OperatorRow.name))
            return [_account(r) for r in rows]

    def exists(self) -> bool:
        with self.db.session() as session:
            return session.scalars(select(OperatorRow.name).limit(1)).first() is not None

    # -- changes ---------------------------------------------------------------------------

    @audited("operator.create")
    def create(
        self, name: str, roles: Iterable[Role], *, password: str | None, actor: str
    ) -> OperatorAccount:
        """A local account; with no password it cannot log in until one is set."""
        check_operator_name(name)
        roles = frozenset(roles)
        if not roles:
            raise InvalidInput("an operator needs at least one role", param="roles")
        hashed = hash_password(password) if password is not None else None
        with self.db.session() as session:
            if session.get(OperatorRow, name) is not None:
                raise Conflict(f"operator {name!r} already exists")
            row = OperatorRow(
                name=name,
                method="local",
                roles=sorted_roles(roles),
                password_hash=hashed,
                disabled=False,
                failed_logins=0,
                created_by=actor,
                created_at=self.clock(),
            )
            session.add(row)
            session.flush()
            self._event(session, "operator.create", actor, name, roles=sorted_roles(roles))
            return _account(row)

    @audited("operator.update")
    def update(
        self,
        name: str,
        *,
        actor: str,
        roles: Iterable[Role] | None = None,
        disabled: bool | None = None,
    ) -> OperatorAccount:
        with self.db.session() as session:
            row = self._row(session, name)
            changes: dict[str, Any] = {}
            if roles is not None:
                wanted = frozenset(roles)
                if not wanted:
                    raise InvalidInput("an operator needs at least one role", param="roles")
                row.roles = sorted_roles(wanted)
                changes["roles"] = row.roles
            if disabled is not None:
                row.disabled = disabled
                changes["disabled"] = disabled
                if disabled:
                    from modelyard.operators.sessions import revoke_all_in

                    revoke_all_in(session, name)
            if not changes:
                raise InvalidInput("nothing to change: give roles or disabled")
            self._event(session, "operator.update", actor, name, **changes)
            return _account(row)

    @audited("operator.password")
    def set_password(self, name: str, password: str, *, actor: str) -> None:
        hashed = hash_password(password)
        with self.db.session() as session:
            row = self._row(session, name)
            if row.method != "local":
                raise InvalidInput(f"{name} logs in through OIDC and has no local password")
            row.password_hash = hashed
            row.failed_logins = 0
            row.locked_until = None
            self._event(session, "operator.password", actor, name)

    @audited("operator.totp")
    def enrol_totp(self, name: str, *, actor: str) -> TotpEnrolment:
        """A new TOTP secret (shown once); from now on a login needs its code."""
        secret = new_totp_secret()
        with self.db.session() as session:
            row = self._row(session, name)
            if row.method != "local":
                raise InvalidInput(f"{name} logs in through OIDC; its provider does MFA")
            row.totp_secret = secret
            row.totp_last_step = None
            self._event(session, "operator.totp", actor, name, enrolled=True)
        return TotpEnrolment(secret, totp_uri(secret, name))

    @audited("operator.totp")
    def remove_totp(self, name: str, *, actor: str) -> None:
        with self.db.session() as session:
            row = self._row(session, name)
            row.totp_secret = None
            row.totp_last_step = None
            self._event(session, "operator.totp", actor, name, enrolled=False)

    # -- logins ----------------------------------------------------------------------------

    @audited("operator.login", on_failure=("operator.login_failed",))
    def login_password(
        self, name: str, password: str, *, totp: str | None = None, via: str = "cli"
    ) -> Operator:
        """The operator, if name, password and (when enrolled) TOTP code are right.

        Any failure is one Unauthorized ("wrong name, password or code"), recorded as
        ``operator.login_failed`` with the true reason in the audit record only."""
        now = self.clock()
        with self.db.session() as session:
            row = session.get(OperatorRow, name) if name else None
            reason = self._refusal(row, password, totp, now)
            if reason is None and row is not None:
                row.failed_logins = 0
                row.locked_until = None
                row.last_login_at = now
                self._event(session, "operator.login", name, name, method="local", via=via)
                return Operator(name, frozenset(Role(r) for r in row.roles), "local")
        with self.db.session() as session:
            row = session.get(OperatorRow, name) if name else None
            if row is not None and reason != "locked":
                row.failed_logins += 1
                if row.failed_logins >= LOCKOUT_AFTER:
                    row.locked_until = now + timedelta(minutes=LOCKOUT_MINUTES)
            subject = name if name and len(name) <= 128 else "(invalid)"
            self._event(
                session, "operator.login_failed", "anonymous", subject, reason=reason, via=via
            )
        if reason == "locked":
            raise Unauthorized(
                f"too many failed logins: try again in {LOCKOUT_MINUTES} minutes",
                code="login_locked",
            )
        raise Unauthorized("wrong operator name, password or code", code="login_failed")

    def _refusal(
        self, row: OperatorRow | None, password: str, totp: str | None, now: datetime
    ) -> str | None:
        if row is None:
            verify_password(None, password)
            return "unknown operator"
        locked_until = _aware(row.locked_until)
        if locked_until is not None and locked_until > now:
            return "locked"
        if row.disabled:
            return "disabled"
        if row.method != "local" or not verify_password(row.password_hash, password):
            return "wrong password"
        if row.totp_secret is not None:
            if not totp:
                return "TOTP code missing"
            step = totp_step(row.totp_secret, totp, now, row.totp_last_step)
            if step is None:
                return "wrong or reused TOTP code"
            row.totp_last_step = step
        return None

    @audited("operator.login", on_failure=("operator.login_failed",))
    def login_oidc(
        self, subject: str, username: str, roles: frozenset[Role], *, issuer: str
    ) -> Operator:
        """Record an OIDC login: the account is made on first login and its roles follow the
        provider's groups at every login. A user with no mapped role is refused."""
        method: Method = "oidc"
        name = check_operator_name(username.strip().lower())
        now = self.clock()
        if not roles:
            with self.db.session() as session:
                self._event(
                    session,
                    "operator.login_failed",
                    "anonymous",
                    name,
                    reason="no mapped group",
                    via="oidc",
                )
            raise Unauthorized(
                f"{name} is in no group that maps to a modelyard role", code="no_role"
            )
        with self.db.session() as session:
            row = session.get(OperatorRow, name)
            refusal: str | None = None
            if row is None:
                row = OperatorRow(
                    name=name,
                    method="oidc",
                    roles=sorted_roles(roles),
                    oidc_subject=f"{issuer}#{subject}",
                    disabled=False,
                    failed_logins=0,
                    created_by=f"oidc:{issuer}",
                    created_at=now,
                )
                session.add(row)
            elif row.method != "oidc" or row.oidc_subject != f"{issuer}#{subject}":
                refusal = "name held by another account"
            elif row.disabled:
                refusal = "disabled"
            if refusal is None:
                row.roles = sorted_roles(roles)
                row.last_login_at = now
                session.flush()
                self._event(
                    session,
                    "operator.login",
                    name,
                    name,
                    method="oidc",
                    roles=row.roles,
                    via="oidc",
                )
                return Operator(name, roles, method)
        with self.db.session() as session:
            self._event(
                session, "operator.login_failed", "anonymous", name, reason=refusal, via="oidc"
            )
        if refusal == "disabled":
            raise Unauthorized(f"operator {name} is disabled", code="disabled")
        raise Conflict(
            f"operator name {name!r} belongs to another account; an admin must resolve it"
        )

    @audited("operator.impersonate")
    def impersonate(self, name: str, *, by: Operator) -> str:
        """The actor string for admin ``by`` acting as ``name`` (``--actor``), recorded.

        Only an admin may; the impersonated name need not be an operator (a departed
        colleague, a service), but the record always names the admin."""
        by.require("operators.impersonate")
        check_operator_name(name)
        actor = f"{name} (impersonated by {by.actor})"
        with self.db.session() as session:
            self._event(session, "operator.impersonate", by.actor, name, acting_as=actor)
        return actor
