"""Lay a version's files out as a directory (hard links into the blob store) for loaders
that want a Hugging Face style folder (sentence-transformers, transformers).

The directory is built under a temporary name and renamed into place, so a crash leaves no
half-built folder under the final name; a finished folder is reused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from modelyard.catalog.records import ModelVersion
from modelyard.errors import StoreFault, UnsafeModel
from modelyard.store.blobs import BlobStore

MATERIALISED_MARKER = ".complete"
"""Written last into a finished folder (not one of the version's files)."""


def materialise(version: ModelVersion, blobs: BlobStore, root: Path) -> Path:
    final = root / version.digest
    if (final / MATERIALISED_MARKER).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{version.digest[:12]}-", dir=root))
    try:
        for entry in version.files:
            relative = Path(entry.path)
            if relative.is_absolute() or ".." in relative.parts:
                raise UnsafeModel(f"{version.ref} lists an unsafe file path: {entry.path}")
            source = blobs.path_for(entry.sha256)
            if not source.is_file():
                raise StoreFault(f"{version.ref}: blob {entry.sha256[:12]} is missing")
            target = building / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        (building / MATERIALISED_MARKER).write_text(version.ref + "\n")
        try:
            os.replace(building, final)
        except OSError:
            # Another process finished the same folder first: use theirs.
            if not (final / MATERIALISED_MARKER).is_file():
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(building)
    return final
