"""Everything one gateway process holds: settings, store, keys, scheduler, metrics, pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.engines.embeddings import open_embedder
from modelyard.engines.loader import open_engine
from modelyard.engines.scheduler import ModelKind, ModelPool, Scheduler
from modelyard.gateway.governance_layer import Governance
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.pipeline import EmbeddingLayer, Layer
from modelyard.governance.keys import KeyStore, Principal
from modelyard.governance.scopes import Access
from modelyard.intake.importer import open_blob_store
from modelyard.store.database import Database


def threads_per_slot(settings: Settings) -> int:
    if settings.n_threads:
        return settings.n_threads
    return max(1, (os.cpu_count() or 1) // settings.gateway_workers)


@dataclass
class Gateway:
    settings: Settings
    db: Database
    registry: Registry
    keys: KeyStore
    scheduler: Scheduler
    metrics: GatewayMetrics
    generation_layers: list[Layer] = field(default_factory=list)
    """Layers around the engine call for chat and completions (outermost first)."""
    embedding_layers: list[EmbeddingLayer] = field(default_factory=list)
    governance: Governance | None = None
    """Scopes, limits, PII and the audit log (``gateway/governance_layer.py``)."""

    @classmethod
    def open(cls, settings: Settings) -> Gateway:
        settings.ensure_home()
        db = Database(settings.resolved_database_url)
        registry = Registry(db, open_blob_store(settings))
        threads = threads_per_slot(settings)
        slot_settings = settings.model_copy(update={"n_threads": threads})

        def load(version: ModelVersion, kind: ModelKind) -> Any:
            if kind == "embed":
                return open_embedder(version, registry.blobs, settings, n_threads=threads)
            return open_engine(version, registry.blobs, slot_settings)

        pool = ModelPool(load, budget_bytes=settings.gateway_memory_budget_mb * 1024 * 1024)
        scheduler = Scheduler(
            pool,
            workers=settings.gateway_workers,
            queue_size=settings.gateway_queue_size,
            retry_after_s=settings.gateway_retry_after_s,
        )
        metrics = GatewayMetrics()
        metrics.watch(
            queue_depth=lambda: scheduler.waiting,
            busy=lambda: scheduler.busy,
            loaded=pool.loaded,
        )
        governance = Governance(db, settings)
        return cls(
            settings,
            db,
            registry,
            KeyStore(db),
            scheduler,
            metrics,
            generation_layers=[governance.generation_layer],
            embedding_layers=[governance.embedding_layer],
            governance=governance,
        )

    def access_for(self, principal: Principal) -> Access:
        """What the calling key may do (scopes of the key and its team; pilot access)."""
        if self.governance is None:
            return Access(key_name=principal.key_name, admin=principal.admin)
        return self.governance.policies.access(principal.key_name, admin=principal.admin)

    def start(self) -> None:
        self.scheduler.start()

    def close(self) -> None:
        self.scheduler.stop()
        try:
            if self.governance is not None:
                self.governance.close()  # signs a checkpoint of the audit log's head
        finally:
            self.db.close()
