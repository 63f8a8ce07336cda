"""Validate a ``.safetensors`` file by its header alone, in process and bounded.

Layout: an 8-byte little-endian header length N, N bytes of JSON mapping tensor names to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an optional ``__metadata__``),
then the tensor bytes. The format holds no code; the checks here make sure the header is
well formed and describes exactly the bytes that follow.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import UnsafeModel

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


@dataclass(frozen=True)
class SafetensorsSummary:
    parameters: int
    dtypes: dict[str, int]
    tensor_count: int


def read_safetensors_header(path: Path) -> SafetensorsSummary:
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise UnsafeModel(f"{path.name} is truncated: no safetensors header")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise UnsafeModel(
                f"{path.name} is not a valid safetensors file: header length {header_len} "
                f"does not fit in {size} bytes"
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsafeModel(f"{path.name} is not a valid safetensors file: bad header JSON") from exc
    if not isinstance(header, dict):
        raise UnsafeModel(f"{path.name} is not a valid safetensors file: header is not an object")
    data_size = size - 8 - header_len
    params = 0
    dtypes: Counter[str] = Counter()
    max_end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        params += _check_tensor(path, name, info, data_size)
        dtypes[info["dtype"]] += 1
        max_end = max(max_end, info["data_offsets"][1])
    if max_end != data_size:
        raise UnsafeModel(
            f"{path.name} is truncated or padded: tensors cover {max_end} bytes, "
            f"the file holds {data_size}"
        )
    return SafetensorsSummary(params, dict(dtypes), sum(dtypes.values()))


def _check_tensor(path: Path, name: str, info: object, data_size: int) -> int:
    bad = f"{path.name} is not a valid safetensors file: tensor {name!r}"
    if not isinstance(info, dict):
        raise UnsafeModel(f"{bad} has no description")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise UnsafeModel(f"{bad} has unknown dtype {dtype!r}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise UnsafeModel(f"{bad} has an invalid shape")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) for o in offsets)
        and 0 <= offsets[0] <= offsets[1] <= data_size
    ):
        raise UnsafeModel(f"{bad} points outside the file (truncated?)")
    count = math.prod(shape)
    if offsets[1] - offsets[0] != count * DTYPE_BYTES[dtype]:
        raise UnsafeModel(f"{bad} has {offsets[1] - offsets[0]} bytes for shape {shape}")
    return count
