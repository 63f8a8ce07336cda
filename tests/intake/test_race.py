"""Intake cannot be raced: the bytes checked are the bytes stored, whatever the source does.

An attacker process (tests/intake/swapper.py) watches the source's directory with inotify
and, on the importer's first open, read or close of the file, swaps a pickle in under the
same name or rewrites the file in place. Whatever it does, the store holds only bytes that
were checked, under their own hash, and never the pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import InvalidInput, UnsafeModel
from modelyard.intake.importer import execute_import, import_path, plan_import
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.conftest import store_snapshot
from tests.factories import write_crafted_gguf, write_tiny_gguf

SWAPPER = Path(__file__).with_name("swapper.py")
PICKLE = pickle.dumps({"weights": [1, 2, 3], "payload": "os.system"}, protocol=4)


@pytest.fixture
def registry(sqlite_settings: Settings) -> Iterator[Registry]:
    db = Database(sqlite_settings.resolved_database_url)
    yield Registry(db, open_blob_store(sqlite_settings), sqlite_settings)
    db.close()


class Swapper:
    def __init__(self, source: Path, trigger: str, action: str, replacement: Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(SWAPPER),
                str(source.parent),
                source.name,
                trigger,
                action,
                str(replacement),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def finish(self) -> dict[str, int]:
        out, _ = self.process.communicate(timeout=30)
        assert self.process.returncode == 0
        result: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        return result


def _pickle_beside(tmp_path: Path) -> Path:
    """The attacker's pickle, outside the watched directory, on the same file system."""
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir(exist_ok=True)
    path = elsewhere / "payload.gguf"
    path.write_bytes(PICKLE)
    return path


def _assert_store_holds_only_checked_bytes(registry: Registry) -> None:
    for sha in registry.blobs.all_hashes():
        data = registry.blobs.path_for(sha).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha
        assert data[:4] == b"GGUF"
        assert PICKLE not in data


@pytest.mark.parametrize("trigger", ["open", "access", "close"])
def test_pickle_renamed_over_the_source_mid_import_never_gets_in(
    trigger: str, registry: Registry, sqlite_settings: Settings, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    source = write_tiny_gguf(incoming / "model.gguf")
    original = source.read_bytes()
    swapper = Swapper(source, trigger, "rename", _pickle_beside(tmp_path))
    try:
        version = import_path(source, registry, sqlite_settings, name="raced")
    finally:
        counts = swapper.finish()
    assert counts["struck"], counts
    assert source.read_bytes() == PICKLE  # the swap happened, mid-import
    assert counts["open"] == 1, counts  # the source is opened once: for the copy
    assert version.digest == hashlib.sha256(original).hexdigest()
    assert registry.blobs.path_for(version.digest).read_bytes() == original
    assert version.metadata["architecture"] == "llama"
    _assert_store_holds_only_checked_bytes(registry)


def test_source_rewritten_in_place_during_the_copy(
    registry: Registry, sqlite_settings: Settings, tmp_path: Path
) -> None:
    """Same inode, new bytes after the first read: what lands is checked, not the source."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    source = write_crafted_gguf(incoming / "big.gguf", embedding_rows=256 * 1024)  # 8 MiB
    assert source.stat().st_size > 4 * 1024 * 1024
    before = store_snapshot(sqlite_settings, registry)
    swapper = Swapper(source, "access", "rewrite", _pickle_beside(tmp_path))
    try:
        version = import_path(source, registry, sqlite_settings, name="rewritten")
    except UnsafeModel as exc:
        refused: UnsafeModel | None = exc
    else:
        refused = None
    finally:
        counts = swapper.finish()
    assert counts["struck"], counts
    if refused is not None:  # the landed copy mixed both: the check on it refused it
        assert "big.gguf" in refused.message
        assert store_snapshot(sqlite_settings, registry) == before
    else:  # the copy finished first: what is stored is what was checked
        stored = registry.blobs.path_for(version.digest).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == version.digest
        assert version.size_bytes == len(stored)
    _assert_store_holds_only_checked_bytes(registry)


def test_source_replaced_between_plan_and_copy_is_refused(
    registry: Registry, sqlite_settings: Settings, tmp_path: Path
) -> None:
    source = write_tiny_gguf(tmp_path / "model.gguf")
    plan = plan_import(source, "swapped", sqlite_settings)
    os.rename(_pickle_beside(tmp_path), source)
    before = store_snapshot(sqlite_settings, registry)
    with pytest.raises(UnsafeModel, match="replaced while being imported"):
        execute_import(plan, registry)
    assert store_snapshot(sqlite_settings, registry) == before


def test_source_replaced_by_a_fifo_is_refused_without_blocking(
    registry: Registry, sqlite_settings: Settings, tmp_path: Path
) -> None:
    """A FIFO would serve a GGUF header to one reader and a pickle to the next."""
    source = write_tiny_gguf(tmp_path / "model.gguf")
    plan = plan_import(source, "fifo", sqlite_settings)
    fifo = tmp_path / "attacker.fifo"
    os.mkfifo(fifo)
    os.rename(fifo, source)
    before = store_snapshot(sqlite_settings, registry)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            execute_import(plan, registry)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # it blocked on the FIFO: unblock it, then fail
        with open(source, "wb"):
            pass
        worker.join(timeout=30)
        pytest.fail("the importer blocked opening a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], UnsafeModel), outcome
    assert "regular file" in outcome[0].message
    assert store_snapshot(sqlite_settings, registry) == before


def test_a_fifo_given_as_the_path_is_refused(
    registry: Registry, sqlite_settings: Settings, tmp_path: Path
) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="neither a regular file nor a directory"):
        import_path(fifo, registry, sqlite_settings)


def test_the_probe_child_reads_the_descriptor_not_a_path(tmp_path: Path) -> None:
    """With the file's only name gone, the child still parses it: it reads the inherited fd."""
    from modelyard.intake.gguf_reader import inspect_gguf

    path = write_tiny_gguf(tmp_path / "model.gguf")
    fd = os.open(path, os.O_RDONLY)
    try:
        path.unlink()
        os.symlink(_pickle_beside(tmp_path), path)  # and the path now leads to a pickle
        metadata = inspect_gguf(fd, name="model.gguf", timeout_s=30, memory_mb=1024)
    finally:
        os.close(fd)
    assert metadata["architecture"] == "llama"
    assert metadata["parameters"] == 16 * 8 + 8


def test_source_that_grows_after_planning_is_refused(
    registry: Registry, sqlite_settings: Settings, tmp_path: Path
) -> None:
    """Same inode, more bytes: the copy stops one byte past the planned size and refuses."""
    source = write_tiny_gguf(tmp_path / "model.gguf")
    plan = plan_import(source, "growing", sqlite_settings)
    with source.open("ab") as handle:
        handle.write(PICKLE * 1000)
    before = store_snapshot(sqlite_settings, registry)
    with pytest.raises(UnsafeModel, match="changed size while being imported"):
        execute_import(plan, registry)
    assert store_snapshot(sqlite_settings, registry) == before
