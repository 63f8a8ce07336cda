"""Refusals by role are evidence: a forged or mistaken action is recorded, then refused."""

from __future__ import annotations

from modelyard.catalog.audit_events import append_event, audited
from modelyard.config import Settings
from modelyard.operators.principal import Operator
from modelyard.operators.roles import ACTIONS
from modelyard.store.database import Database


@audited("access.denied")
def record_denial(
    db: Database, settings: Settings, operator: Operator, action: str, *, path: str, method: str
) -> None:
    """Append ``access.denied``: ``operator`` asked for ``action`` at ``path`` and its roles do
    not allow it. The caller then answers 403. KeyError for an unknown action."""
    ACTIONS[action]  # only known actions are recorded
    with db.session() as session:
        append_event(
            session,
            db,
            settings,
            "access.denied",
            operator.actor,
            path[:512],
            {
                "action": action,
                "method": method,
                "roles": sorted(r.value for r in operator.roles),
            },
        )
