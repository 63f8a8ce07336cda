"""Open the right engine for a registered model version: its engine worker.

The worker's pool checks every load (``load_check.py``): the file's bytes against the
version's digest, and a signature where the policy requires one; a refused load raises
:class:`~modelyard.engines.worker_process.LoadRefused` on first use."""

from __future__ import annotations

import tempfile
from pathlib import Path

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.worker_engine import WorkerEngine
from modelyard.engines.worker_options import pool_from_settings
from modelyard.engines.workers import WorkerPool
from modelyard.errors import InvalidInput
from modelyard.store.blobs import BlobStore


def open_engine(
    version: ModelVersion, blobs: BlobStore, settings: Settings, *, slots: int = 2
) -> WorkerEngine:
    """A synchronous engine for ``version`` that generates through a llama-server worker."""
    if version.format != "gguf":
        raise InvalidInput(
            f"{version.ref} is a {version.format} model; engine workers run GGUF files "
            "(quantize or convert it to GGUF first)",
            param="model",
        )

    # A private worker with few slots (a command or an evaluation runs one generation at a
    # time); its status and log files must not overwrite those of a running gateway.
    scratch = Path(tempfile.mkdtemp(prefix="modelyard-engine-"))

    def make_pool() -> WorkerPool:
        local = settings.model_copy(update={"worker_slots": max(1, slots)})
        return pool_from_settings(local, blobs, run_dir=scratch)

    return WorkerEngine(make_pool, version, scratch=scratch)
