"""Audit fixtures: an open database and audit log on the parametrised backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.audit import AuditLog
from modelyard.config import Settings
from modelyard.store.database import Database
from tests.audit.witnessing import WitnessProcess, witnessed


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


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[WitnessProcess]:
    """A real witness process (file-backed key) with its public key pinned in a file."""
    process = WitnessProcess(tmp_path / "witness")
    process.init()
    process.start()
    yield process
    process.stop()


@pytest.fixture
def witnessed_log(
    audit_db: Database, settings: Settings, witness: WitnessProcess
) -> Iterator[AuditLog]:
    witnessed(settings, witness)
    settings.audit_checkpoint_every = 5
    log = AuditLog(audit_db, settings)
    yield log
    log.close(checkpoint=False)
