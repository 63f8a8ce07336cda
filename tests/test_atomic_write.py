"""Atomic file writes: whole or not at all, durable renames, never overwriting key files."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelyard import atomic_write
from modelyard.atomic_write import (
    create_new,
    open_binary,
    open_text,
    temp_path,
    write_bytes,
    write_text,
)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_the_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.txt"  # folders are created
    write_text(target, "first")
    write_text(target, "second ✓")
    assert target.read_text(encoding="utf-8") == "second ✓"
    write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _leftovers(target.parent) == []


def test_an_error_before_the_rename_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "keep.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), open_text(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("stopped")
    with pytest.raises(TypeError):
        write_text(target, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError), temp_path(target) as partial:
        partial.write_text("written by a library")
        raise ValueError("the library failed")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_kill_before_the_rename_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old checkpoint")
    child = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from modelyard.atomic_write import open_binary\n"
        "with open_binary(Path(sys.argv[1])) as handle:\n"
        "    handle.write(b'new checkpoint, half written')\n"
        "    handle.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", child, str(target)], check=False, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old checkpoint"
    (leftover,) = _leftovers(tmp_path)  # a kill cannot clean up: a hidden temp file stays
    assert leftover.startswith(".checkpoint.pt.")


def test_the_file_is_fsynced_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        calls.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with open_binary(tmp_path / "a.bin") as handle:
        handle.write(b"x")
    assert calls == ["fsync file", "rename", "fsync dir"]
    calls.clear()
    with temp_path(tmp_path / "b.bin") as partial:
        partial.write_bytes(b"y")
    assert calls == ["fsync file", "rename", "fsync dir"]
    calls.clear()
    assert create_new(tmp_path / "c.key", b"z")
    assert calls == ["fsync file", "fsync dir"]


def test_create_new_never_overwrites(tmp_path: Path) -> None:
    key = tmp_path / "audit" / "signing.key"
    assert create_new(key, b"first secret")
    assert not create_new(key, b"second secret")
    assert key.read_bytes() == b"first secret"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert _leftovers(key.parent) == []


def test_fsync_dir_refuses_a_file(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(NotADirectoryError):
        atomic_write.fsync_dir(plain)
