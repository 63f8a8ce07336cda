"""A full disk is said plainly: large writes check the free space first, and a disk that
fills up mid-write becomes a StoreFault naming it, with nothing half-written left behind."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import StoreFault
from modelyard.intake.importer import import_path
from modelyard.quantize.service import expected_size
from modelyard.store import disk_space
from modelyard.store.blobs import BlobStore
from modelyard.store.disk_space import full_disk_said_plainly, require_free
from modelyard.tune.export import merged_size
from modelyard.tune.gguf_file import GGUFFile
from tests.factories import write_tiny_gguf


def _free(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    """The file system reports ``free`` bytes free (a disk cannot be filled for a test)."""
    real = shutil.disk_usage

    def usage(path: Any) -> Any:
        total, used, _ = real(path)
        return type(real(path))(total, used, free)

    monkeypatch.setattr(disk_space.shutil, "disk_usage", usage)


def test_require_free_says_what_was_needed_and_what_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_free(tmp_path, 1_000, "a small write")  # the real disk has room for it
    _free(monkeypatch, 50_000_000)
    with pytest.raises(StoreFault, match=r"needs about 300 MB in .* and 50 MB are free"):
        require_free(tmp_path / "not" / "made" / "yet", 300_000_000, "the import")


def test_a_disk_that_fills_mid_write_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreFault, match="filled up while writing the test file"):  # noqa: SIM117
        with full_disk_said_plainly(tmp_path, "the test file"):
            with open("/dev/full", "wb") as full:  # every write: ENOSPC, for real
                full.write(b"x" * 4096)
                full.flush()
    with pytest.raises(PermissionError), full_disk_said_plainly(tmp_path, "x"):
        raise PermissionError(13, "other errors pass through")


def test_the_store_refuses_a_copy_the_disk_cannot_hold_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"\0" * 1_000_000)
    store = BlobStore(tmp_path / "blobs")
    _free(monkeypatch, 10_000_000)  # under the 64 MiB margin
    with source.open("rb") as handle, pytest.raises(StoreFault, match="copy into the store"):
        store.write_stream([handle])
    assert not any(store.tmp_dir.iterdir())
    monkeypatch.undo()
    with source.open("rb") as handle:
        assert store.write_stream([handle]).size_bytes == 1_000_000


def test_size_estimates(tmp_path: Path) -> None:
    with GGUFFile(write_tiny_gguf(tmp_path / "tiny.gguf")) as gguf:
        assert merged_size(gguf) == 16 * 8 * 2 + 8 * 4  # the matrix in F16, the vector in F32
    assert expected_size(1_600, current_level="F16", level="Q8_0") == 850
    assert expected_size(1_000, current_level=None, level="Q4_0") == 1_000


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_import_the_disk_cannot_hold_is_refused_before_copying(
    tmp_path: Path, registry: Registry, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    _free(monkeypatch, 1_000_000)
    with pytest.raises(StoreFault, match="not enough disk space for the copy into the store"):
        import_path(source, registry, settings)
    assert registry.is_empty()
    assert not any(registry.blobs.tmp_dir.iterdir())
