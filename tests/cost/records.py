"""Request records as the gateway writes them, appended to a real audit log (cost tests)."""

from __future__ import annotations

from typing import Any

from modelyard.audit.log import AuditEntry, AuditLog
from modelyard.config import Settings
from modelyard.store.database import Database

Served = tuple[str | None, int, int, dict[str, Any]]
"""One answered request: team, prompt tokens, completion tokens, details."""


def append_requests(db: Database, settings: Settings, served: list[Served]) -> None:
    log = AuditLog(db, settings)
    try:
        for team, prompt, completion, details in served:
            log.append(
                AuditEntry(
                    actor="alice",
                    team=team,
                    target="gemma3-270m@1",
                    status=200,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    details=details,
                )
            )
    finally:
        log.close(checkpoint=False)
