"""Opening what an evaluation needs for a registered model: a generation engine or a scorer.

A GGUF version generates through its engine worker; an endpoint version through its
replicas (:mod:`modelyard.engines.remote_sync`), so generation metrics work on both.
Log-likelihood scoring (``choice``, ``perplexity``, bias probes) needs the weights here."""

from __future__ import annotations

from collections.abc import Callable

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.base import Engine
from modelyard.engines.endpoints import is_endpoint
from modelyard.engines.loader import open_engine
from modelyard.engines.remote_sync import open_remote_engine
from modelyard.engines.scoring import LlamaCppScorer, Scorer
from modelyard.errors import InvalidInput
from modelyard.store.blobs import BlobStore

EngineFactory = Callable[[ModelVersion], Engine]
ScorerFactory = Callable[[ModelVersion], Scorer]


ENDPOINT_SCORING = (
    "{ref} is a remote endpoint: log-likelihood scoring (the choice and perplexity metrics, "
    "bias probes) reads the model's own weights, which are not here; evaluate it with a "
    "generation metric (exact, contains, regex, rouge-l, json-valid, json-schema-valid)"
)


def open_scorer(version: ModelVersion, blobs: BlobStore, settings: Settings) -> Scorer:
    if is_endpoint(version):
        raise InvalidInput(ENDPOINT_SCORING.format(ref=version.ref), param="model")
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
    includes loading the model); an endpoint version's replicas, checked once."""
    engine: Engine
    if is_endpoint(version):
        engine = open_remote_engine(version, settings)
    else:
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
