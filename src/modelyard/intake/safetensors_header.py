"""Validate a ``.safetensors`` file by its header alone, in process and bounded.

Layout: an 8-byte little-endian header length N, N bytes of JSON mapping tensor names to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an optional ``__metadata__``),
then the tensor bytes. The format holds no code; the checks here make sure the header is
well formed and describes exactly the bytes that follow: every tensor's byte count is its
dtype size times its shape, and the tensors tile the data area with no overlap and no gap.
"""

from __future__ import annotations

import math
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelyard.errors import UnsafeModel
from modelyard.intake import safe_json

MAX_HEADER_BYTES = 100 * 1024 * 1024
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


MAX_DIMS = 16


@dataclass(frozen=True)
class SafetensorsSummary:
    parameters: int
    dtypes: dict[str, int]
    tensor_count: int


def read_safetensors_header(path: Path, *, shown: str | None = None) -> SafetensorsSummary:
    with path.open("rb") as handle:
        return check_safetensors(handle, shown or path.name)


def check_safetensors(handle: BinaryIO, name: str) -> SafetensorsSummary:
    """Validate the safetensors file open as ``handle`` (read from its start)."""
    size = os.fstat(handle.fileno()).st_size
    handle.seek(0)
    prefix = handle.read(8)
    if len(prefix) < 8:
        raise UnsafeModel(f"{name} is truncated: no safetensors header")
    (header_len,) = struct.unpack("<Q", prefix)
    if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
        raise UnsafeModel(
            f"{name} is not a valid safetensors file: header length {header_len} "
            f"does not fit in {size} bytes (at most {MAX_HEADER_BYTES})"
        )
    raw = handle.read(header_len)
    header = safe_json.loads(raw, what=f"{name} (safetensors header)", max_bytes=MAX_HEADER_BYTES)
    if not isinstance(header, dict):
        raise UnsafeModel(f"{name} is not a valid safetensors file: header is not an object")
    _check_metadata(name, header.get("__metadata__"))
    data_size = size - 8 - header_len
    params = 0
    dtypes: Counter[str] = Counter()
    spans: list[tuple[int, int, str]] = []
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        count, dtype, begin, end = _check_tensor(name, tensor, info, data_size)
        params += count
        dtypes[dtype] += 1
        spans.append((begin, end, tensor))
    _check_layout(name, spans, data_size)
    return SafetensorsSummary(params, dict(dtypes), sum(dtypes.values()))


def _check_metadata(name: str, metadata: object) -> None:
    if metadata is None:
        return
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise UnsafeModel(
            f"{name} is not a valid safetensors file: __metadata__ must map strings to strings"
        )


def _check_layout(name: str, spans: list[tuple[int, int, str]], data_size: int) -> None:
    """The tensors tile the data area exactly: no overlap, no gap, nothing past the end."""
    position = 0
    previous = "the header"
    for begin, end, tensor in sorted(spans):
        if begin < position:
            raise UnsafeModel(
                f"{name} is not a valid safetensors file: tensor {tensor!r} "
                f"(bytes {begin}-{end}) overlaps {previous}"
            )
        if begin > position:
            raise UnsafeModel(
                f"{name} is not a valid safetensors file: {begin - position} unaccounted "
                f"bytes before tensor {tensor!r}"
            )
        position, previous = end, f"tensor {tensor!r}"
    if position != data_size:
        raise UnsafeModel(
            f"{name} is truncated or padded: tensors cover {position} bytes, "
            f"the file holds {data_size}"
        )


def _check_tensor(
    name: str, tensor: str, info: object, data_size: int
) -> tuple[int, str, int, int]:
    bad = f"{name} is not a valid safetensors file: tensor {tensor!r}"
    if not isinstance(info, dict):
        raise UnsafeModel(f"{bad} has no description")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise UnsafeModel(f"{bad} has unknown dtype {dtype!r}")
    if not (
        isinstance(shape, list)
        and len(shape) <= MAX_DIMS
        and all(type(d) is int and d >= 0 for d in shape)
    ):
        raise UnsafeModel(f"{bad} has an invalid shape")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(type(o) is int for o in offsets)
        and 0 <= offsets[0] <= offsets[1] <= data_size
    ):
        raise UnsafeModel(f"{bad} points outside the file (truncated?)")
    count = math.prod(shape)
    if offsets[1] - offsets[0] != count * DTYPE_BYTES[dtype]:
        raise UnsafeModel(
            f"{bad} has {offsets[1] - offsets[0]} bytes, but {dtype} x {shape} needs "
            f"{count * DTYPE_BYTES[dtype]}"
        )
    return count, dtype, offsets[0], offsets[1]
