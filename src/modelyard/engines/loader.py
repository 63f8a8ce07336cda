"""Open the right engine for a registered model version: its engine worker."""

from __future__ import annotations

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.worker_engine import WorkerEngine
from modelyard.engines.worker_options import pool_from_settings
from modelyard.engines.workers import WorkerPool
from modelyard.errors import InvalidInput
from modelyard.store.blobs import BlobStore


def open_engine(version: ModelVersion, blobs: BlobStore, settings: Settings) -> WorkerEngine:
    """A synchronous engine for ``version`` that generates through a llama-server worker."""
    if version.format != "gguf":
        raise InvalidInput(
            f"{version.ref} is a {version.format} model; engine workers run GGUF files "
            "(quantize or convert it to GGUF first)",
            param="model",
        )

    def make_pool() -> WorkerPool:
        # One worker with few slots: a CLI command or an evaluation runs one generation at a time.
        local = settings.model_copy(update={"worker_slots": min(settings.worker_slots, 2)})
        return pool_from_settings(local, blobs)

    return WorkerEngine(make_pool, version)
