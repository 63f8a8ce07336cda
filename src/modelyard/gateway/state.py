"""Everything one gateway process holds: settings, store, keys, engine workers, metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.audit.checkpoints import Checkpointer
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.catalog.serving_cache import ServingCache
from modelyard.config import Settings
from modelyard.engines.embeddings import open_embedder
from modelyard.engines.provider import EngineProvider
from modelyard.engines.provider_router import ProviderRouter
from modelyard.engines.remote_provider import RemoteProvider
from modelyard.engines.scheduler import ModelKind, ModelPool, Scheduler
from modelyard.engines.worker_options import batch_pool_from_settings, pool_from_settings
from modelyard.errors import ModelyardError
from modelyard.gateway.admission import Admission
from modelyard.gateway.governance_layer import Governance
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.pipeline import EmbeddingLayer, Layer
from modelyard.gateway.response_cache import ResponseCache
from modelyard.governance.keys import KeyStore, Principal
from modelyard.governance.scopes import Access
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from modelyard.store.lifecycle_tables import VersionStateRow
from modelyard.store.tables import ModelVersionRow, utcnow

log = logging.getLogger(__name__)


def production_versions(registry: Registry) -> list[ModelVersion]:
    """Versions in the production stage: their workers start with the gateway."""
    with registry.db.session() as session:
        rows = session.execute(
            select(ModelVersionRow)
            .join(VersionStateRow, VersionStateRow.version_id == ModelVersionRow.id)
            .where(VersionStateRow.stage == "production")
        ).scalars()
        refs = [f"{row.model.name}@{row.version}" for row in rows]
    return [registry.resolve(ref) for ref in refs]


@dataclass
class Gateway:
    settings: Settings
    db: Database
    registry: Registry
    keys: KeyStore
    workers: EngineProvider
    """One llama-server process per model version in use (generation); endpoint versions'
    remote replicas (``engines/provider_router.py``)."""
    admission: Admission
    scheduler: Scheduler
    """Threads for in-process embedding models."""
    metrics: GatewayMetrics
    generation_layers: list[Layer] = field(default_factory=list)
    """Layers around the engine call for chat and completions (outermost first)."""
    embedding_layers: list[EmbeddingLayer] = field(default_factory=list)
    governance: Governance | None = None
    """Scopes, limits, PII and the audit log (``gateway/governance_layer.py``)."""
    checkpointer: Checkpointer | None = None
    """Signs the audit head at least every ``audit_checkpoint_interval_s`` (while serving)."""
    serving_cache: ServingCache = field(default_factory=ServingCache)
    """The catalog rows this process read, reused while ``catalog_generation`` is unchanged."""
    response_cache: ResponseCache | None = None
    """Answers kept for keys and teams that opt in (``gateway/response_cache.py``)."""
    clock: Callable[[], datetime] = utcnow
    """The wall clock of batches and files (created, expiry); tests inject one."""
    batch_workers: EngineProvider | None = None
    """Where batch lines of local models run in ``idle`` mode: workers of their own at idle
    CPU priority (``worker_options.batch_pool_from_settings``); None: the interactive ones."""

    @classmethod
    def open(cls, settings: Settings) -> Gateway:
        settings.ensure_home()
        db = Database(settings.resolved_database_url, pool_size=settings.database_pool_size)
        registry = Registry(db, open_blob_store(settings), settings)
        workers = ProviderRouter(
            pool_from_settings(settings, registry.blobs), RemoteProvider.from_settings(settings, db)
        )
        admission = Admission(
            slots=settings.worker_slots,
            queue_size=settings.gateway_queue_size,
            retry_after_s=settings.gateway_retry_after_s,
        )

        def load(version: ModelVersion, kind: ModelKind) -> Any:
            return open_embedder(version, registry.blobs, settings, n_threads=1)

        pool = ModelPool(load, budget_bytes=settings.gateway_memory_budget_mb * 1024 * 1024)
        scheduler = Scheduler(
            pool,
            workers=settings.gateway_workers,
            queue_size=settings.gateway_queue_size,
            retry_after_s=settings.gateway_retry_after_s,
        )
        metrics = GatewayMetrics()
        metrics.watch(
            queue_depth=lambda: admission.waiting() + scheduler.waiting,
            busy=lambda: admission.running() + scheduler.busy,
            loaded=lambda: [
                *pool.loaded(),
                *((w["model"], "generate", 1) for w in workers.status() if w["state"] == "ready"),
            ],
        )
        governance = Governance(db, settings)
        cache = ResponseCache(db, settings, governance.audit.engine)
        return cls(
            settings,
            db,
            registry,
            KeyStore(db, settings, background_usage=True),  # closed in close()
            workers,
            admission,
            scheduler,
            metrics,
            generation_layers=[governance.generation_layer, cache.layer],
            embedding_layers=[governance.embedding_layer],
            governance=governance,
            response_cache=cache,
            batch_workers=batch_pool_from_settings(settings, registry.blobs),
        )

    def access_for(
        self, principal: Principal, session: Session | None = None, generation: int | None = None
    ) -> Access:
        """What the calling key may do (scopes of the key and its team; pilot access); read in
        ``session`` when given, which read ``generation`` (``access_generation``) already;
        without a session, the access the request's key check read, when it did."""
        if session is None and principal.access is not None:
            return principal.access
        if self.governance is None:
            return Access(key_name=principal.key_name, admin=principal.admin)
        policies, key = self.governance.policies, principal.key_name
        if session is None:
            return policies.access(key, admin=principal.admin)
        return policies.access_in(session, generation, key, admin=principal.admin)

    async def start(self) -> None:
        self.scheduler.start()
        if self.governance is not None:
            self.checkpointer = Checkpointer(
                self.governance.audit,
                interval_s=self.settings.audit_checkpoint_interval_s,
                every=self.settings.audit_checkpoint_every,
            ).start()
        try:
            targets = production_versions(self.registry)
        except ModelyardError as exc:
            log.warning("could not list production versions to start: %s", exc.message)
            targets = []
        gguf = [v for v in targets if v.format in ("gguf", "endpoint")]
        if gguf:
            log.info("starting engines for %s", ", ".join(v.ref for v in gguf))
            await self.workers.prewarm(gguf)

    async def close(self) -> None:
        try:
            try:
                await self.workers.close()
            finally:
                if self.batch_workers is not None:
                    await self.batch_workers.close()
        finally:
            self.scheduler.stop()
            self.keys.close()  # pending last_used_at writes
            if self.checkpointer is not None:
                self.checkpointer.stop()
            if self.response_cache is not None:
                self.response_cache.close()
            try:
                if self.governance is not None:
                    self.governance.close()  # signs a checkpoint of the audit log's head
            finally:
                self.db.close()
