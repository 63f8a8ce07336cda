"""Blob store upkeep: find orphans left by interrupted imports, and re-verify stored bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from modelyard.store.blobs import CHUNK_SIZE, BlobStore


@dataclass(frozen=True)
class GcResult:
    removed_blobs: list[str] = field(default_factory=list)
    removed_temp_files: int = 0
    freed_bytes: int = 0


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    corrupt: list[str]
    """Blobs whose bytes no longer hash to their name."""
    missing: list[str]
    """Blobs the registry references that are not in the store."""

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing


def collect_garbage(blobs: BlobStore, referenced: set[str]) -> GcResult:
    """Delete blob files no registered version references, and dead writers' temp files."""
    removed: list[str] = []
    freed = 0
    for sha in sorted(blobs.all_hashes() - referenced):
        path = blobs.path_for(sha)
        freed += path.stat().st_size
        blobs.delete(sha)
        removed.append(sha)
    return GcResult(removed, blobs.clean_tmp(), freed)


def verify_blobs(
    blobs: BlobStore, referenced: set[str], *, progress: Callable[[int], None] | None = None
) -> VerifyResult:
    """Re-hash every referenced blob; report corrupt and missing ones."""
    corrupt: list[str] = []
    missing: list[str] = []
    for sha in sorted(referenced):
        path = blobs.path_for(sha)
        if not path.is_file():
            missing.append(sha)
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                digest.update(chunk)
                if progress is not None:
                    progress(len(chunk))
        if digest.hexdigest() != sha:
            corrupt.append(sha)
    return VerifyResult(len(referenced), corrupt, missing)
