from __future__ import annotations

import io
import os
from pathlib import Path

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.intake.importer import import_path
from modelyard.store.maintenance import collect_garbage, verify_blobs
from tests.factories import write_tiny_gguf


def test_gc_removes_only_unreferenced_blobs(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    kept = import_path(write_tiny_gguf(tmp_path / "k.gguf"), registry, settings)
    orphan = registry.blobs.write_stream([io.BytesIO(b"left by an interrupted import")])
    result = collect_garbage(registry.blobs, registry.referenced_blobs())
    assert result.removed_blobs == [orphan.sha256]
    assert result.freed_bytes == orphan.size_bytes
    assert registry.blobs.exists(kept.digest) and not registry.blobs.exists(orphan.sha256)


def test_verify_detects_corruption_and_loss(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    a = import_path(write_tiny_gguf(tmp_path / "a.gguf", context=64), registry, settings)
    b = import_path(write_tiny_gguf(tmp_path / "b.gguf", context=128), registry, settings)
    assert verify_blobs(registry.blobs, registry.referenced_blobs()).ok
    path = registry.blobs.path_for(a.digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    registry.blobs.delete(b.digest)
    result = verify_blobs(registry.blobs, registry.referenced_blobs())
    assert result.corrupt == [a.digest] and result.missing == [b.digest]
    assert not result.ok
