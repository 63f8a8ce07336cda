"""Administrative changes in the tamper-evident audit log: what is recorded, and the append.

Every change is audited where it happens, in the service method that makes it, not in the
route or command that called it. The vocabulary is data (:data:`EVENT_KINDS`); a service
method that writes events is marked with :func:`audited`, so a test can enumerate the
mutating methods and check that each one writes what it declares.

:func:`append_event` appends inside the change's own transaction: the change and its audit
record commit together or not at all, and the record's place in the chain is the exact
switch point (a request that saw the new state is recorded after it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from modelyard.config import Settings
from modelyard.store.database import Database


@dataclass(frozen=True)
class EventKind:
    """One kind of administrative event: what its subject (the record's ``target``) names."""

    kind: str
    subject: str
    summary: str


EVENT_KINDS = MappingProxyType(
    {
        e.kind: e
        for e in (
            EventKind("key.create", "key:NAME", "an API key was created (never its secret)"),
            EventKind("key.revoke", "key:NAME", "an API key was revoked"),
            EventKind("key.policy.set", "key:NAME", "a key's team and scope were set"),
            EventKind("key.policy.delete", "key:NAME", "a key's scope was removed"),
            EventKind("team.create", "team:NAME", "a team was created"),
            EventKind("team.update", "team:NAME", "a team's scope was changed"),
            EventKind("team.delete", "team:NAME", "a team was deleted"),
            EventKind(
                "model.import", "NAME@N", "a version was registered (import, tune, quantize)"
            ),
            EventKind("model.remove", "NAME@N or NAME", "versions were removed"),
            EventKind("model.intended_use", "NAME@N", "the model card's intended use was set"),
            EventKind("model.sign", "NAME@N", "a version was signed"),
            EventKind("model.verify", "NAME@N", "a version's signature was verified"),
            EventKind("model.trial_load", "NAME@N", "a version was trial-loaded in a sandbox"),
            EventKind("lifecycle.promote", "NAME@N", "a version was promoted, policy gates passed"),
            EventKind("lifecycle.place", "NAME@N", "a version was placed at a stage without gates"),
            EventKind("alias.set", "alias:NAME", "an alias was created or moved"),
            EventKind("alias.rollback", "alias:NAME", "an alias was rolled back"),
            EventKind("alias.remove", "alias:NAME", "an alias was removed"),
            EventKind("advisory.add", "NAME@N", "an advisory was raised against a version"),
            EventKind("advisory.withdraw", "NAME@N", "an advisory was withdrawn"),
            EventKind(
                "lifecycle.propose", "NAME@N", "a promotion was proposed for a second person"
            ),
            EventKind("lifecycle.approve", "NAME@N", "a proposed promotion was approved"),
            EventKind("lifecycle.reject", "NAME@N", "a proposed promotion was rejected"),
            EventKind("operator.create", "operator:NAME", "an operator account was created"),
            EventKind("operator.update", "operator:NAME", "an operator's roles or state changed"),
            EventKind("operator.password", "operator:NAME", "an operator's password was set"),
            EventKind(
                "operator.totp", "operator:NAME", "an operator's TOTP was enrolled or removed"
            ),
            EventKind("operator.login", "operator:NAME", "an operator logged in"),
            EventKind("operator.login_failed", "operator:NAME", "a login attempt failed"),
            EventKind("operator.logout", "operator:NAME", "an operator's session was ended"),
            EventKind("operator.impersonate", "operator:NAME", "an admin acted in another's name"),
            EventKind("access.denied", "PATH", "an operator was refused an action by role"),
            EventKind("deploy.apply", "manifest:SHA", "a deployment manifest was applied"),
            EventKind("endpoint.allow", "endpoint-rule:RULE", "an upstream host/net was allowed"),
            EventKind("endpoint.deny", "endpoint-rule:RULE", "an upstream host/net was denied"),
            EventKind("audit.erase", "subject:ID", "a data subject's key was destroyed"),
            EventKind("purge", "(none)", "records older than the retention period were removed"),
        )
    }
)
"""Every event kind the services write, by name. ``purge`` is a record kind of its own
(``kind = 'purge'``); the others are ``kind = 'event'`` records with ``details.event``."""

AUDITED = "__audited__"
"""The attribute :func:`audited` sets on a service method: the event kinds it writes."""
AUDITED_ON_FAILURE = "__audited_on_failure__"
"""…and the kinds it writes when it fails (a failed login is recorded, then refused)."""

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def audited(*kinds: str, on_failure: tuple[str, ...] = ()) -> Callable[[_Fn], _Fn]:
    """Declare that the decorated service method writes audit events ``kinds``, in that
    order, each time it succeeds (one record per kind), and ``on_failure`` when it fails
    (otherwise a failed call writes nothing). Marks the method; changes nothing about how it
    runs."""
    unknown = [k for k in (*kinds, *on_failure) if k not in EVENT_KINDS]
    if not kinds or unknown:
        raise ValueError(f"unknown audit event kind(s) {unknown or kinds!r}")

    def mark(method: _Fn) -> _Fn:
        setattr(method, AUDITED, kinds)
        if on_failure:
            setattr(method, AUDITED_ON_FAILURE, on_failure)
        return method

    return mark


def audited_kinds(method: object) -> tuple[str, ...] | None:
    """The event kinds ``method`` declares with :func:`audited`, or None."""
    kinds = getattr(method, AUDITED, None)
    return kinds if isinstance(kinds, tuple) else None


def failure_kinds(method: object) -> tuple[str, ...] | None:
    """The event kinds ``method`` writes when it fails (``audited(on_failure=…)``), or None."""
    kinds = getattr(method, AUDITED_ON_FAILURE, None)
    return kinds if isinstance(kinds, tuple) else None


def append_event(
    session: Session,
    db: Database,
    settings: Settings,
    kind: str,
    actor: str,
    subject: str,
    details: dict[str, Any],
) -> None:
    """Append event ``kind`` (``lifecycle.promote``, ``alias.set``…) in ``session``."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown audit event kind {kind!r}")
    from modelyard.audit.log import AuditEntry, AuditLog  # the audit log sits above the catalog

    log = AuditLog(db, settings)
    try:
        with log.lock:
            log.append_in(
                session,
                AuditEntry(
                    kind="event", actor=actor, target=subject, details={"event": kind, **details}
                ),
            )
    finally:
        log.close(checkpoint=False)
