"""Import a GGUF file or a safetensors model directory into the store and the registry.

Order of work, so that a refusal writes nothing and a failure leaves nothing behind:

1. validate the name and the path, refuse unsafe formats (in process, cheap);
2. read metadata (GGUF in a limited child process; safetensors headers bounded in process);
3. stream each file into the blob store (temp file, SHA-256 while copying, fsync, rename);
4. register the version in one transaction.

If step 3 or 4 fails, blobs this import created and nothing else references are deleted.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.catalog.records import ModelVersion, NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import InvalidInput, StoreFault, UnsafeModel
from modelyard.intake import licence
from modelyard.intake.directory import ScannedFile, describe_directory, scan_directory
from modelyard.intake.gguf_reader import read_gguf_metadata
from modelyard.intake.names import derive_name, validate_name
from modelyard.intake.safety import refuse_unsafe_name
from modelyard.store.blobs import BlobStore, ProgressCallback, StoredBlob

ProgressFactory = Callable[[str, int], ProgressCallback]
"""Given a label and a total byte count, returns the per-chunk progress callback."""


@dataclass(frozen=True)
class ImportPlan:
    name: str
    format: str
    metadata: dict[str, Any]
    files: list[ScannedFile]
    source: Path


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def plan_import(path: Path, name: str | None, settings: Settings) -> ImportPlan:
    """Everything up to (not including) writing: validation, refusals and metadata."""
    if name is not None:
        validate_name(name)
    if not os.path.lexists(path):
        raise InvalidInput(f"no such file or directory: {path}", param="path")
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.is_dir():
        files = scan_directory(path)
        metadata = describe_directory(path, files)
        fmt = "safetensors"
    elif path.is_file():
        refuse_unsafe_name(path)
        if path.suffix.lower() == ".safetensors":
            raise UnsafeModel(
                f"{path.name}: import a safetensors model as its directory "
                "(config.json, tokenizer files and weights together)"
            )
        metadata = read_gguf_metadata(
            path, timeout_s=settings.probe_timeout_s, memory_mb=settings.probe_memory_mb
        )
        metadata["license"] = licence.normalise(metadata.get("license"))
        files = [ScannedFile(path.name, path, path.stat().st_size)]
        fmt = "gguf"
    else:
        raise InvalidInput(f"{path} is neither a regular file nor a directory", param="path")
    chosen = name if name is not None else derive_name(path.stem if path.is_file() else path.name)
    metadata["file_size"] = sum(f.size_bytes for f in files)
    return ImportPlan(chosen, fmt, metadata, files, path)


def manifest_digest(entries: list[VersionFile]) -> str:
    """The digest of a multi-file version: SHA-256 over its sorted file list."""
    canonical = json.dumps(
        [{"path": e.path, "sha256": e.sha256, "size": e.size_bytes} for e in entries],
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(canonical).hexdigest()


def execute_import(
    plan: ImportPlan,
    registry: Registry,
    *,
    created_by: str | None = None,
    progress: ProgressFactory | None = None,
    expected_sha256: str | None = None,
    origin: str = "imported",
    parent: str | None = None,
    lineage: dict[str, Any] | None = None,
) -> ModelVersion:
    stored: list[StoredBlob] = []
    try:
        entries = []
        for scanned in plan.files:
            callback = progress(scanned.relpath, scanned.size_bytes) if progress else None
            with scanned.path.open("rb") as source:
                blob = registry.blobs.write_stream(
                    [source],
                    progress=callback,
                    expected_sha256=expected_sha256 if plan.format == "gguf" else None,
                )
            stored.append(blob)
            entries.append(VersionFile(scanned.relpath, blob.sha256, blob.size_bytes))
        digest = entries[0].sha256 if plan.format == "gguf" else manifest_digest(entries)
        return registry.add_version(
            NewVersion(
                name=plan.name,
                digest=digest,
                format=plan.format,
                size_bytes=sum(e.size_bytes for e in entries),
                metadata=plan.metadata,
                files=tuple(entries),
                source_path=str(plan.source),
                created_by=created_by or current_user(),
                origin=origin,
                parent=parent,
                lineage=lineage or {},
            )
        )
    except BaseException:
        _discard_new_blobs(registry, stored)
        raise


def _discard_new_blobs(registry: Registry, stored: list[StoredBlob]) -> None:
    created = {blob.sha256 for blob in stored if blob.created}
    if not created:
        return
    try:
        referenced = registry.referenced_blobs()
    except StoreFault:
        # The database is unreachable: the finished blobs stay (complete and named by their
        # hash, so harmless); `modelyard store gc` removes them once it is back.
        return
    for sha in created - referenced:
        registry.blobs.delete(sha)


def import_path(
    path: Path,
    registry: Registry,
    settings: Settings,
    *,
    name: str | None = None,
    created_by: str | None = None,
    progress: ProgressFactory | None = None,
) -> ModelVersion:
    plan = plan_import(path, name, settings)
    return execute_import(plan, registry, created_by=created_by, progress=progress)


def open_blob_store(settings: Settings) -> BlobStore:
    store = BlobStore(settings.blobs_dir)
    store.clean_tmp()
    return store
