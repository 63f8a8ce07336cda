"""A cheap, in-process first look at a GGUF file: magic, version and counts.

This reads at most 24 bytes, so it is safe on any input. It rejects files that are not GGUF
(naming pickles and zip checkpoints for what they are), truncated headers, and headers whose
counts could not possibly fit in the file, before the full metadata parser ever runs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import UnsafeModel

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_TENSORS = 1_000_000
MAX_KV = 1_000_000
# The smallest possible encodings: a tensor info is at least a 8-byte name length, 4-byte
# n_dims, 4-byte type and 8-byte offset; a key/value is at least an 8-byte key length and
# a 4-byte type.
MIN_TENSOR_INFO_BYTES = 24
MIN_KV_BYTES = 12


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    tensor_count: int
    kv_count: int
    file_size: int


def describe_foreign_magic(head: bytes) -> str:
    if head[:1] == b"\x80":
        return "it looks like a Python pickle, which can run code when loaded"
    if head[:2] == b"PK":
        return "it looks like a zip archive (a PyTorch checkpoint is a zip of pickles)"
    return f"its first bytes are {head[:4]!r}, not {GGUF_MAGIC!r}"


def read_header(path: Path, *, shown: str | None = None) -> GGUFHeader:
    with path.open("rb") as handle:
        return check_header(handle.fileno(), shown or path.name)


def check_header(fd: int, name: str) -> GGUFHeader:
    """Check the GGUF header of the file open as ``fd`` (read with ``pread``, offset 0)."""
    file_size = os.fstat(fd).st_size
    head = os.pread(fd, 24, 0)
    if len(head) < 4 or head[:4] != GGUF_MAGIC:
        raise UnsafeModel(f"{name} is not a GGUF file: {describe_foreign_magic(head)}")
    if len(head) < 24:
        raise UnsafeModel(f"{name} is truncated: the GGUF header is incomplete")
    version, tensor_count, kv_count = struct.unpack("<IQQ", head[4:24])
    if version not in SUPPORTED_VERSIONS:
        raise UnsafeModel(f"{name}: unsupported GGUF version {version}")
    if tensor_count > MAX_TENSORS or kv_count > MAX_KV:
        raise UnsafeModel(
            f"{name}: implausible GGUF header ({tensor_count} tensors, {kv_count} metadata entries)"
        )
    if 24 + tensor_count * MIN_TENSOR_INFO_BYTES + kv_count * MIN_KV_BYTES > file_size:
        raise UnsafeModel(
            f"{name} is truncated or corrupt: its header declares {tensor_count} tensors "
            f"and {kv_count} metadata entries, more than {file_size} bytes can hold"
        )
    return GGUFHeader(version, tensor_count, kv_count, file_size)
