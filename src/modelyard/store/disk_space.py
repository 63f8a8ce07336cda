"""Free disk space: checked before a large write, and a full disk said plainly.

Imports, quantizations and merged fine-tunes write files of hundreds of MB to GBs. Without
a check, a full disk surfaces as whatever the writer happened to be doing (a numpy
``tofile``, llama.cpp's status 1, a half-written temporary file's ``OSError``); with it,
the user reads how much was needed and how much was free, and nothing is left half-written
(the writers use temporary files, removed on failure).
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelyard.errors import StoreFault

MARGIN_BYTES = 64 * 1024 * 1024
"""Left free beyond what a write needs (the database, logs and the system go on writing)."""


def free_bytes(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _mb(n: int) -> str:
    return f"{n / 1_000_000:,.0f} MB"


def require_free(directory: Path, needed: int, what: str) -> None:
    """Raise :class:`StoreFault` unless ``needed`` bytes (plus a margin) are free there."""
    free = free_bytes(directory)
    if free < needed + MARGIN_BYTES:
        raise StoreFault(
            f"not enough disk space for {what}: it needs about {_mb(needed)} in {directory} "
            f"and {_mb(free)} are free; free some space and try again"
        )


def is_disk_full(exc: OSError) -> bool:
    """``ENOSPC`` (or ``EDQUOT``), or numpy's ``tofile`` saying the same in words."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "Not enough free space" in str(exc)


@contextmanager
def full_disk_said_plainly(directory: Path, what: str) -> Iterator[None]:
    """Turn a full disk inside the block into a :class:`StoreFault` that says so."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise StoreFault(
            f"the disk holding {directory} filled up while writing {what} "
            f"({_mb(free_bytes(directory))} free now); free some space and try again"
        ) from exc
