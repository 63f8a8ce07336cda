"""Opening what an evaluation needs for a registered model: a generation engine or a scorer."""

from __future__ import annotations

from collections.abc import Callable

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.base import Engine
from modelyard.engines.loader import open_engine
from modelyard.engines.scoring import LlamaCppScorer, Scorer
from modelyard.errors import InvalidInput
from modelyard.store.blobs import BlobStore

EngineFactory = Callable[[ModelVersion], Engine]
ScorerFactory = Callable[[ModelVersion], Scorer]


def open_scorer(version: ModelVersion, blobs: BlobStore, settings: Settings) -> Scorer:
    if version.format != "gguf":
        raise InvalidInput(
            f"{version.ref} is a {version.format} model; log-likelihood scoring runs GGUF files",
            param="model",
        )
    context = int(version.metadata.get("context_length") or settings.n_ctx)
    return LlamaCppScorer(
        blobs.path_for(version.files[0].sha256),
        n_ctx=min(context, settings.n_ctx),
        n_threads=settings.n_threads,
    )


def open_started_engine(version: ModelVersion, blobs: BlobStore, settings: Settings) -> Engine:
    """The version's engine worker, loaded before the first row (so no row's latency
    includes loading the model)."""
    engine = open_engine(version, blobs, settings)
    try:
        engine.start()
    except BaseException:
        engine.close()
        raise
    return engine


def engine_factory(blobs: BlobStore, settings: Settings) -> EngineFactory:
    return lambda version: open_started_engine(version, blobs, settings)


def scorer_factory(blobs: BlobStore, settings: Settings) -> ScorerFactory:
    return lambda version: open_scorer(version, blobs, settings)
