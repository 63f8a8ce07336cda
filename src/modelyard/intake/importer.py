"""Import a GGUF file or a safetensors model directory into the store and the registry.

Order of work, so that a refusal writes nothing and a failure leaves nothing behind, and so
that the bytes checked are the bytes stored (the source can change at any moment; it is
opened once per file and never parsed):

1. plan: validate the name and the path; for a directory, screen every file name against the
   allowlist (:mod:`file_kinds`); names only, nothing is read;
2. land: open each source once (no symlink following, regular files only, the same inode as
   planned) and stream it into ``blobs/tmp`` (SHA-256 while copying, fsync, read-only),
   at most one byte past the planned size; a file whose size changed is refused;
3. check the landed copies: the GGUF header in process and its metadata in a limited child
   process that reads the copy through an inherited file descriptor; every directory file
   against its kind, safetensors headers bounded in process;
4. commit: rename each copy under its hash (atomic), then register the version in one
   transaction.

A refusal or failure at any step removes the landed copies, and blobs this import created
that nothing else references.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from modelyard.catalog.audit_events import audited
from modelyard.catalog.names import derive_name, validate_name
from modelyard.catalog.records import ModelVersion, NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, NotFound, StoreFault, UnsafeModel
from modelyard.identity import current_user
from modelyard.intake import licence
from modelyard.intake.directory import ScannedFile, describe_directory, scan_directory
from modelyard.intake.gguf_reader import inspect_gguf
from modelyard.intake.safety import refuse_unsafe_name
from modelyard.store.blobs import LandedBlob, ProgressCallback, StoredBlob

ProgressFactory = Callable[[str, int], ProgressCallback]
"""Given a label and a total byte count, returns the per-chunk progress callback."""


@dataclass(frozen=True)
class ImportPlan:
    """What to import, decided from names alone; nothing has been read yet."""

    name: str
    format: str
    files: list[ScannedFile]
    source: Path
    probe_timeout_s: float
    probe_memory_mb: int


def plan_import(path: Path, name: str | None, settings: Settings) -> ImportPlan:
    """Validation and refusals by name; the content is checked after landing."""
    if name is not None:
        validate_name(name)
    if not os.path.lexists(path):
        raise InvalidInput(f"no such file or directory: {path}", param="path")
    path = Path(os.path.realpath(path))
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", param="path") from exc
    if stat.S_ISDIR(info.st_mode):
        files = scan_directory(path)
        fmt = "safetensors"
    elif stat.S_ISREG(info.st_mode):
        refuse_unsafe_name(path)
        if path.suffix.lower() == ".safetensors":
            raise UnsafeModel(
                f"{path.name}: import a safetensors model as its directory "
                "(config.json, tokenizer files and weights together)"
            )
        files = [ScannedFile(path.name, path, info.st_size, "gguf", (info.st_dev, info.st_ino))]
        fmt = "gguf"
    else:
        raise InvalidInput(f"{path} is neither a regular file nor a directory", param="path")
    chosen = name if name is not None else derive_name(path.stem if fmt == "gguf" else path.name)
    return ImportPlan(chosen, fmt, files, path, settings.probe_timeout_s, settings.probe_memory_mb)


@contextlib.contextmanager
def open_source(scanned: ScannedFile) -> Iterator[BinaryIO]:
    """Open a planned file once, for the copy: no symlinks, no FIFOs, the inode planned."""
    try:
        fd = os.open(scanned.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnsafeModel(
            f"refused {scanned.relpath}: cannot open it as a plain file ({exc.strerror})"
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeModel(f"refused {scanned.relpath}: not a regular file")
        if scanned.identity is not None and (info.st_dev, info.st_ino) != scanned.identity:
            raise UnsafeModel(f"refused {scanned.relpath}: it was replaced while being imported")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


class _AtMost:
    """Reads at most ``limit`` bytes of ``source``: a file that keeps growing cannot fill
    the store; one byte past the planned size is enough to tell that it changed."""

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self._source, self._left = source, limit

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        chunk = self._source.read(want) if want else b""
        self._left -= len(chunk)
        return chunk


def inspect_landed(plan: ImportPlan, copies: dict[str, LandedBlob]) -> dict[str, Any]:
    """The metadata of the landed copies, refusing what is unsafe: never reads the source."""
    if plan.format == "gguf":
        (scanned,) = plan.files
        with copies[scanned.relpath].path.open("rb") as handle:
            metadata = inspect_gguf(
                handle.fileno(),
                name=scanned.relpath,
                timeout_s=plan.probe_timeout_s,
                memory_mb=plan.probe_memory_mb,
            )
        metadata["license"] = licence.normalise(metadata.get("license"))
    else:
        paths = {relpath: landed.path for relpath, landed in copies.items()}
        metadata = describe_directory(str(plan.source), plan.files, paths)
    metadata["file_size"] = sum(landed.size_bytes for landed in copies.values())
    return metadata


def manifest_digest(entries: list[VersionFile]) -> str:
    """The digest of a multi-file version: SHA-256 over its sorted file list."""
    canonical = json.dumps(
        [{"path": e.path, "sha256": e.sha256, "size": e.size_bytes} for e in entries],
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(canonical).hexdigest()


@audited("model.import")
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
    refuse_duplicate: bool = False,
) -> ModelVersion:
    landed: dict[str, LandedBlob] = {}
    stored: list[StoredBlob] = []
    try:
        for scanned in plan.files:
            callback = progress(scanned.relpath, scanned.size_bytes) if progress else None
            with open_source(scanned) as source:
                copy = registry.blobs.land(
                    [_AtMost(source, scanned.size_bytes + 1)],
                    progress=callback,
                    expected_sha256=expected_sha256 if plan.format == "gguf" else None,
                    expected_size=scanned.size_bytes,
                )
            landed[scanned.relpath] = copy
            if copy.size_bytes != scanned.size_bytes:
                raise UnsafeModel(
                    f"refused {scanned.relpath}: it changed size while being imported "
                    f"({scanned.size_bytes} bytes when planned)"
                )
        metadata = inspect_landed(plan, landed)
        entries = []
        for scanned in plan.files:
            blob = registry.blobs.commit(landed[scanned.relpath])
            stored.append(blob)
            entries.append(VersionFile(scanned.relpath, blob.sha256, blob.size_bytes))
        digest = entries[0].sha256 if plan.format == "gguf" else manifest_digest(entries)
        if refuse_duplicate:
            _refuse_duplicate(registry, plan.name, digest)
        return registry.add_version(
            NewVersion(
                name=plan.name,
                digest=digest,
                format=plan.format,
                size_bytes=sum(e.size_bytes for e in entries),
                metadata=metadata,
                files=tuple(entries),
                source_path=str(plan.source),
                created_by=created_by or f"os:{current_user()}",
                origin=origin,
                parent=parent,
                lineage=lineage or {},
            )
        )
    except BaseException:
        for copy in landed.values():
            registry.blobs.discard(copy)
        _discard_new_blobs(registry, stored)
        raise


def _refuse_duplicate(registry: Registry, name: str, digest: str) -> None:
    """Conflict when ``name`` already has a version with these bytes."""
    try:
        versions = registry.list_versions(name)
    except NotFound:
        return
    for version in versions:
        if version.digest == digest:
            raise Conflict(
                f"{version.ref} already has these bytes (sha256:{digest[:12]}): nothing imported; "
                "pass --new-version to make another version of the same file",
                code="duplicate_version",
            )


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


@audited("model.import")
def import_path(
    path: Path,
    registry: Registry,
    settings: Settings,
    *,
    name: str | None = None,
    created_by: str | None = None,
    progress: ProgressFactory | None = None,
    new_version: bool = False,
) -> ModelVersion:
    """Import ``path`` as the next version of its name; the same bytes as an existing version
    of that name are refused (Conflict) unless ``new_version``. Audited as ``model.import``
    (by :meth:`Registry.add_version`), with ``created_by`` (default: this OS user) as actor."""
    plan = plan_import(path, name, settings)
    return execute_import(
        plan,
        registry,
        created_by=created_by,
        progress=progress,
        refuse_duplicate=not new_version,
    )
