"""Operator sessions: console cookies and CLI login tokens, stored as SHA-256 digests.

A session has a hard expiry (``operator_session_hours``) and, for the console, an idle
expiry (``operator_session_idle_minutes``). Its roles are those at login (an OIDC user's
come from the provider's groups then). Each session carries its own CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from modelyard.catalog.audit_events import append_event, audited
from modelyard.config import Settings
from modelyard.errors import NotFound
from modelyard.operators.principal import Operator
from modelyard.operators.roles import Role, sorted_roles
from modelyard.store.database import Database
from modelyard.store.operator_tables import OperatorRow, OperatorSessionRow
from modelyard.store.tables import utcnow

SessionKind = Literal["console", "cli"]
TOKEN_PREFIX = "myo_"
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class IssuedSession:
    """A new session: the token is shown (or set as a cookie) once and never stored."""

    id: str
    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class ActiveSession:
    operator: Operator
    id: str
    csrf_token: str
    expires_at: datetime


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def revoke_all_in(session: Session, operator: str) -> None:
    """End every session of ``operator`` (in the caller's transaction)."""
    session.execute(
        update(OperatorSessionRow)
        .where(OperatorSessionRow.operator == operator)
        .values(revoked=True)
    )


class OperatorSessions:
    def __init__(self, db: Database, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    def issue(self, operator: Operator, kind: SessionKind) -> IssuedSession:
        """A session for ``operator``, who has just logged in (the login is audited)."""
        now = self.clock()
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = OperatorSessionRow(
            id=secrets.token_hex(8),
            token_sha256=token_digest(token),
            operator=operator.name,
            kind=kind,
            roles=sorted_roles(operator.roles),
            method=operator.method,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=self.settings.operator_session_hours),
            revoked=False,
        )
        with self.db.session() as session:
            session.add(row)
        return IssuedSession(row.id, token, row.csrf_token, row.expires_at)

    def resolve(self, token: str, *, touch: bool = True) -> ActiveSession | None:
        """The live session behind ``token``, or None (unknown, revoked, expired, idle, or
        its operator disabled). A console session's idle clock restarts."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        now = self.clock()
        with self.db.session() as session:
            row = session.scalars(
                select(OperatorSessionRow).where(
                    OperatorSessionRow.token_sha256 == token_digest(token)
                )
            ).first()
            if row is None or row.revoked or _aware(row.expires_at) <= now:
                return None
            idle = timedelta(minutes=self.settings.operator_session_idle_minutes)
            if row.kind == "console" and _aware(row.last_seen_at) + idle <= now:
                return None
            account = session.get(OperatorRow, row.operator)
            if account is None or account.disabled:
                return None
            if touch:
                row.last_seen_at = now
            operator = Operator(
                name=row.operator,
                roles=frozenset(Role(r) for r in row.roles),
                method="oidc" if row.method == "oidc" else "local",
                session_id=row.id,
            )
            return ActiveSession(operator, row.id, row.csrf_token, _aware(row.expires_at))

    @audited("operator.logout")
    def revoke(self, token: str) -> None:
        """End the session behind ``token``; NotFound when there is no such live session."""
        with self.db.session() as session:
            row = session.scalars(
                select(OperatorSessionRow).where(
                    OperatorSessionRow.token_sha256 == token_digest(token)
                )
            ).first()
            if row is None or row.revoked:
                raise NotFound("no such session, or it has ended already")
            row.revoked = True
            append_event(
                session,
                self.db,
                self.settings,
                "operator.logout",
                row.operator,
                f"operator:{row.operator}",
                {"session": row.id, "kind": row.kind},
            )


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
