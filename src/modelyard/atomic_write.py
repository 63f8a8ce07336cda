"""Files written whole or not at all: the one place modelyard writes a file atomically.

A file is written to a temporary name in the same folder, flushed and fsynced, renamed over
its final name (atomic on POSIX), and the folder is fsynced so that the rename survives a
power cut. An error or a kill at any moment before the rename leaves the previous file (or
none) in place, never a partial one; an error also removes the temporary file.

* :func:`write_text`, :func:`write_bytes`: a whole file from memory;
* :func:`open_text`, :func:`open_binary`: a file written through a handle (streamed, or by a
  library that writes to a file object, such as ``torch.save``);
* :func:`temp_path`: a path for a library that insists on opening the file itself (the GGUF
  writer, safetensors);
* :func:`create_new`: create a file that must never be overwritten (key material): temp file,
  fsync, then a hard link, which fails if the name exists.

Permissions are those of :func:`open` (``mode`` less the umask) unless ``mode`` says otherwise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

DEFAULT_MODE = 0o666
"""Like :func:`open`: the umask decides (usually 0644)."""


def fsync_dir(directory: Path) -> None:
    """Make a rename, link or new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_temp(path: Path, mode: int) -> tuple[int, Path]:
    """Create a fresh, empty temporary file beside ``path`` (never an existing one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), temp
        except FileExistsError:  # pragma: no cover - 32 random bits taken: draw again
            continue


def _publish(temp: Path, path: Path) -> None:
    os.replace(temp, path)
    fsync_dir(path.parent)


@contextlib.contextmanager
def temp_path(path: Path, *, mode: int = DEFAULT_MODE) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that opens the file itself.

    The file exists (empty) when the block starts; when the block ends, whatever was written
    there is fsynced and renamed over ``path``. If the block raises, it is removed.
    """
    fd, temp = _new_temp(path, mode)
    os.close(fd)
    try:
        yield temp
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _publish(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def open_binary(path: Path, *, mode: int = DEFAULT_MODE) -> Iterator[BinaryIO]:
    """A binary handle whose contents replace ``path`` when the block ends without error."""
    fd, temp = _new_temp(path, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def open_text(
    path: Path, *, mode: int = DEFAULT_MODE, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[TextIO]:
    """A text handle whose contents replace ``path`` when the block ends without error."""
    fd, temp = _new_temp(path, mode)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text(path: Path, text: str, *, mode: int = DEFAULT_MODE) -> Path:
    """Replace ``path`` with ``text`` (UTF-8), whole or not at all."""
    with open_text(path, mode=mode) as handle:
        handle.write(text)
    return path


def write_bytes(path: Path, data: bytes, *, mode: int = DEFAULT_MODE) -> Path:
    """Replace ``path`` with ``data``, whole or not at all."""
    with open_binary(path, mode=mode) as handle:
        handle.write(data)
    return path


def create_new(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data``, whole, unless it exists: never overwrites.

    Returns False (and writes nothing) when ``path`` already exists, also when another process
    created it a moment earlier.
    """
    fd, temp = _new_temp(path, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    finally:
        temp.unlink(missing_ok=True)
