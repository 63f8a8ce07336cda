"""What an engine checks before it loads a version: the exact bytes it is about to run.

The worker process opens the model file once; the open descriptor is hashed here and then
inherited by ``llama-server`` (``worker_process.py``), so the bytes checked are the bytes
loaded — replacing the file under its path after the check changes nothing. Every load
hashes the whole file (about 0.3 s for the 250 MB default model on one core; see
docs/models.md for why there is no cache keyed on the file's metadata).

A load is refused (:class:`~modelyard.engines.worker_process.LoadRefused`, 503
``model_unavailable``) when

* the bytes' SHA-256 is not the version's digest (a flipped byte, a swapped file), or
* the policy requires a signature at the version's stage (``signature = true`` on that stage
  or an earlier one) and no stored signature by a trusted key covers exactly these bytes.

A refusal also raises a blocking advisory on the version (``catalog/advisories.py``), so the
catalog, ``models show`` and ``/readyz`` say why it is not served.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime

from modelyard.catalog.advisories import raise_load_refusal
from modelyard.catalog.lifecycle import state_of
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.rows import find_version
from modelyard.catalog.signing import find_valid
from modelyard.config import Settings
from modelyard.engines.worker_process import LoadRefused
from modelyard.errors import ModelyardError
from modelyard.governance.policy import load_policy
from modelyard.governance.policy_gates import signature_required_at, trusted_keys
from modelyard.store.database import Database

log = logging.getLogger(__name__)
_CHUNK = 4 << 20


def sha256_of_fd(fd: int) -> str:
    """SHA-256 of everything the descriptor's file holds, read with ``pread`` (the
    descriptor's offset is left alone)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


class LoadCheck:
    """The check a worker pool runs on each load (``pool_from_settings`` installs it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._clock = clock

    def __call__(self, version: ModelVersion, fd: int) -> None:
        """Raise LoadRefused unless the file open at ``fd`` may be loaded as ``version``."""
        entry = version.files[0]
        actual = sha256_of_fd(fd)
        if actual != entry.sha256:
            self._refuse(
                version,
                "integrity",
                f"refused to load {version.ref}: the stored bytes of {entry.path} do not match "
                f"its sha256 (expected {entry.sha256[:12]}…, read {actual[:12]}…); the file "
                "is corrupt or was tampered with (`modelyard store verify`)",
            )
        db = Database(self.settings.resolved_database_url, run_migrations=False)
        try:
            self._check_signature(db, version, {entry.path: actual})
        finally:
            db.close()

    def _check_signature(self, db: Database, version: ModelVersion, actual: dict[str, str]) -> None:
        try:
            policy = load_policy(self.settings)
            with db.session() as session:
                stage = state_of(session, find_version(session, version.ref).id).stage
            if not signature_required_at(policy, stage):
                return
            signature, why = find_valid(db, version, trusted_keys(policy), actual=actual)
        except ModelyardError as exc:  # fail closed: an unreadable policy or key loads nothing
            raise LoadRefused(
                f"refused to load {version.ref}: its signature could not be checked: {exc.message}"
            ) from exc
        if signature is None:
            self._refuse(
                version,
                "signature",
                f"refused to load {version.ref}: the policy requires a signature at stage "
                f"{stage.value} and {why}",
                db=db,
            )

    def _refuse(
        self, version: ModelVersion, kind: str, message: str, *, db: Database | None = None
    ) -> None:
        owned = db is None
        db = db or Database(self.settings.resolved_database_url, run_migrations=False)
        try:
            advisory = raise_load_refusal(
                db, self.settings, version.ref, kind, message, now=self._clock()
            )
            message += f" (advisory {advisory.id})"
        except ModelyardError as exc:
            log.error("could not record an advisory on %s: %s", version.ref, exc.message)
        finally:
            if owned:
                db.close()
        log.error("%s", message)
        raise LoadRefused(message)
