"""The content-addressed blob store under ``<home>/blobs``.

A blob is named by the SHA-256 of its bytes (``blobs/sha256/ab/abcdef…``). Writing is
crash-safe: bytes stream into a temporary file in the same directory tree while the hash is
computed, the file is fsynced, then atomically renamed into place. A failure or a kill at any
point leaves at most a temp file in ``blobs/tmp``, which :meth:`BlobStore.clean_tmp` removes;
never a half-written blob under its final name.

Intake uses the two halves apart: :meth:`BlobStore.land` copies into ``blobs/tmp`` (hashed,
fsynced, read-only), the caller checks *that copy*, then :meth:`BlobStore.commit` renames it
under its hash or :meth:`BlobStore.discard` removes it. :meth:`BlobStore.write_stream` is both
at once, for bytes already trusted. :func:`open_blob_store` opens a home's store.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from modelyard.atomic_write import fsync_dir
from modelyard.store.disk_space import full_disk_said_plainly, require_free

if TYPE_CHECKING:
    from modelyard.config import Settings

CHUNK_SIZE = 1024 * 1024


class ByteSource(Protocol):
    """What the store copies from: anything with ``read(n)`` (an open binary file)."""

    def read(self, size: int, /) -> bytes: ...


ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just copied, once per chunk."""


def _size_of(source: ByteSource) -> int:
    """Bytes left to read in an open file from its position (0 when it is not a file)."""
    try:
        fileno = source.fileno()  # type: ignore[attr-defined]
        return max(0, os.fstat(fileno).st_size - os.lseek(fileno, 0, os.SEEK_CUR))
    except (AttributeError, OSError, ValueError):
        return 0


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size_bytes: int
    path: Path
    created: bool
    """True when this write put the blob in the store (it was not there before)."""


@dataclass(frozen=True)
class LandedBlob:
    """A copy in ``blobs/tmp``: hashed, fsynced and read-only, waiting to be checked."""

    sha256: str
    size_bytes: int
    path: Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"

    def path_for(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def land(
        self,
        sources: Iterable[ByteSource],
        *,
        expected_sha256: str | None = None,
        progress: ProgressCallback | None = None,
        expected_size: int | None = None,
    ) -> LandedBlob:
        """Copy the concatenation of ``sources`` into ``blobs/tmp``, hashing and fsyncing it.

        The copy is read-only and not yet under its final name: the caller checks *these*
        bytes (never the source, which may change under it), then :meth:`commit` renames it
        into place or :meth:`discard` removes it. Raises ``ValueError`` when
        ``expected_sha256`` is given and does not match; nothing is left behind then.
        The disk must hold ``expected_size`` bytes (default: what the open files have left
        to read) or :class:`~modelyard.errors.StoreFault` is raised before anything is copied.
        """
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        sources = list(sources)
        if expected_size is None:
            expected_size = sum(_size_of(source) for source in sources)
        require_free(self.tmp_dir, expected_size, "the copy into the store")
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(
            prefix=f"import-{os.getpid()}-", suffix=".part", dir=self.tmp_dir
        )
        tmp_path = Path(tmp_name)
        try:
            with (
                full_disk_said_plainly(self.tmp_dir, "a copy into the store"),
                os.fdopen(fd, "wb") as out,
            ):
                for source in sources:
                    while chunk := source.read(CHUNK_SIZE):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256:
                raise ValueError(f"SHA-256 mismatch: expected {expected_sha256}, got {sha256}")
            os.chmod(tmp_path, 0o444)
            return LandedBlob(sha256, size, tmp_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
            raise

    def commit(self, landed: LandedBlob) -> StoredBlob:
        """Move a landed copy under its content name (atomic rename; a no-op if present)."""
        final = self.path_for(landed.sha256)
        if final.is_file():
            landed.path.unlink()
            return StoredBlob(landed.sha256, landed.size_bytes, final, created=False)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(landed.path, final)
        fsync_dir(final.parent)
        return StoredBlob(landed.sha256, landed.size_bytes, final, created=True)

    def discard(self, landed: LandedBlob) -> None:
        """Remove a landed copy that was refused (harmless once it was committed)."""
        with contextlib.suppress(FileNotFoundError):
            landed.path.unlink()

    def write_stream(
        self,
        sources: Iterable[ByteSource],
        *,
        expected_sha256: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> StoredBlob:
        """Copy the concatenation of ``sources`` into the store and return where it lies.

        Raises ``ValueError`` when ``expected_sha256`` is given and does not match; nothing is
        stored in that case.
        """
        landed = self.land(sources, expected_sha256=expected_sha256, progress=progress)
        try:
            return self.commit(landed)
        except BaseException:
            self.discard(landed)
            raise

    def write_file(self, path: Path, *, progress: ProgressCallback | None = None) -> StoredBlob:
        with path.open("rb") as source:
            return self.write_stream([source], progress=progress)

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(sha256).unlink()

    def clean_tmp(self) -> int:
        """Remove temp files whose writing process is gone; returns how many were removed."""
        if not self.tmp_dir.is_dir():
            return 0
        removed = 0
        for leftover in self.tmp_dir.glob("import-*.part"):
            pid_text = leftover.name.split("-")[1]
            if pid_text.isdigit() and _process_alive(int(pid_text)):
                continue
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                removed += 1
        return removed

    def all_hashes(self) -> set[str]:
        base = self.root / "sha256"
        if not base.is_dir():
            return set()
        return {p.name for p in base.glob("*/*") if p.is_file()}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store of ``settings``' home, cleared of temp files whose writer is gone."""
    store = BlobStore(settings.blobs_dir)
    store.clean_tmp()
    return store
