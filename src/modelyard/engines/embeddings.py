"""Embedding engines: texts in, vectors out.

Two backends: a sentence-transformers model (a safetensors directory with ``modules.json``,
such as all-MiniLM-L6-v2) run with PyTorch on the CPU, loaded from the registry's blobs
(materialised as a folder of hard links, never from a hub); and a GGUF model run by
llama.cpp in embedding mode (mean pooling).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.llama_cpp import LlamaCppEngine
from modelyard.engines.materialise import materialise
from modelyard.errors import EngineFault, InvalidInput
from modelyard.store.blobs import BlobStore


@runtime_checkable
class Embedder(Protocol):
    @property
    def context_length(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """Normalised vectors, one per text, and the number of input tokens."""
        ...

    def close(self) -> None: ...


class SentenceTransformerEmbedder:
    def __init__(self, folder: Path, *, n_threads: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EngineFault(
                "sentence-transformers is not installed; it runs safetensors embedding models"
            ) from exc
        torch.set_num_threads(max(1, n_threads))
        try:
            self._model: Any = SentenceTransformer(
                str(folder), device="cpu", local_files_only=True, trust_remote_code=False
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise EngineFault(f"could not load the embedding model: {exc}") from exc
        self._torch = torch

    @property
    def context_length(self) -> int:
        return int(self._model.max_seq_length)

    def embed(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        encoded = self._model.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        counts = [len(ids) for ids in encoded]
        if (longest := max(counts, default=0)) > self.context_length:
            raise InvalidInput(
                f"an input has {longest} tokens; the model reads at most {self.context_length}",
                param="input",
                code="context_length_exceeded",
            )
        with self._torch.inference_mode():
            vectors = self._model.encode(
                list(texts), normalize_embeddings=True, convert_to_numpy=True
            )
        return [[float(x) for x in row] for row in vectors], sum(counts)

    def close(self) -> None:
        del self._model


def is_sentence_transformer(version: ModelVersion) -> bool:
    return version.format == "safetensors" and any(f.path == "modules.json" for f in version.files)


def open_embedder(
    version: ModelVersion, blobs: BlobStore, settings: Settings, *, n_threads: int
) -> Embedder:
    if version.format == "gguf":
        context = version.metadata.get("context_length") or settings.n_ctx
        return LlamaCppEngine(
            blobs.path_for(version.files[0].sha256),
            n_ctx=min(int(context), settings.n_ctx),
            n_threads=n_threads,
            embedding=True,
        )
    if is_sentence_transformer(version):
        folder = materialise(version, blobs, settings.home / "materialised")
        return SentenceTransformerEmbedder(folder, n_threads=n_threads)
    raise InvalidInput(
        f"{version.ref} is not an embedding model: use a GGUF file or a sentence-transformers "
        "directory (modules.json)",
        param="model",
    )
