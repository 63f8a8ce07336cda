"""The real usage source: request records in the audit log (``modelyard.audit.usage``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from modelyard.audit.usage import usage_by
from modelyard.cost.chargeback import GroupBy, UsageRow
from modelyard.errors import StoreFault
from modelyard.store.database import Database


class AuditUsage:
    def __init__(self, db: Database) -> None:
        self._db = db

    def usage(self, since: datetime, until: datetime, by: GroupBy) -> list[UsageRow]:
        try:
            rows = usage_by(self._db, since, until, by)
        except SQLAlchemyError as exc:
            raise StoreFault(f"cannot read usage from the audit log: {exc}") from exc
        return [
            UsageRow(
                u.group,
                u.requests,
                u.prompt_tokens,
                u.completion_tokens,
                u.cache_hits,
                u.charged_tokens,
            )
            for u in rows
        ]
