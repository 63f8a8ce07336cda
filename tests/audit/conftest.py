"""Audit fixtures: an open database and audit log on the parametrised backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelyard.audit import AuditLog
from modelyard.config import Settings
from modelyard.store.database import Database


@pytest.fixture
def audit_db(settings: Settings) -> Iterator[Database]:
    db = Database(settings.resolved_database_url)
    yield db
    db.close()


@pytest.fixture
def audit_log(audit_db: Database, settings: Settings) -> Iterator[AuditLog]:
    settings.audit_checkpoint_every = 5
    log = AuditLog(audit_db, settings)
    yield log
    log.close(checkpoint=False)
