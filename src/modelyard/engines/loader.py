"""Open the right engine for a registered model version."""

from __future__ import annotations

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.base import Engine
from modelyard.engines.llama_cpp import LlamaCppEngine
from modelyard.errors import InvalidInput
from modelyard.store.blobs import BlobStore


def open_engine(version: ModelVersion, blobs: BlobStore, settings: Settings) -> Engine:
    if version.format != "gguf":
        raise InvalidInput(
            f"{version.ref} is a {version.format} model; the llama.cpp engine runs GGUF files "
            "(quantize or convert it to GGUF first)",
            param="model",
        )
    path = blobs.path_for(version.files[0].sha256)
    context = version.metadata.get("context_length") or settings.n_ctx
    return LlamaCppEngine(
        path, n_ctx=min(int(context), settings.n_ctx), n_threads=settings.n_threads
    )
