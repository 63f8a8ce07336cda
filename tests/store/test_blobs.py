from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from modelyard.store.blobs import BlobStore


def test_write_is_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first = store.write_stream([io.BytesIO(b"hello "), io.BytesIO(b"world")])
    second = store.write_stream([io.BytesIO(b"hello world")])
    assert first.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert first.created and not second.created
    assert first.path == second.path == store.path_for(first.sha256)
    assert first.path.read_bytes() == b"hello world"
    assert store.all_hashes() == {first.sha256}


def test_failure_inside_copy_loop_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)

    def explode(_: int) -> None:
        raise RuntimeError("killed mid-copy")

    with pytest.raises(RuntimeError):
        store.write_stream([io.BytesIO(b"x" * 3_000_000)], progress=explode)
    assert store.all_hashes() == set()
    assert list(store.tmp_dir.iterdir()) == []


def test_hash_mismatch_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        store.write_stream([io.BytesIO(b"abc")], expected_sha256="0" * 64)
    assert store.all_hashes() == set()


def test_clean_tmp_removes_leftovers_of_dead_writers_only(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    store.tmp_dir.mkdir(parents=True)
    dead = store.tmp_dir / "import-999999999-abc.part"
    dead.write_bytes(b"partial")
    import os

    alive = store.tmp_dir / f"import-{os.getpid()}-def.part"
    alive.write_bytes(b"in progress")
    assert store.clean_tmp() == 1
    assert not dead.exists() and alive.exists()
