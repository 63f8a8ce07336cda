"""A fast, read-only view of a GGUF file: typed metadata, tensor descriptions, raw tensor bytes.

The ``gguf`` package's reader builds one numpy view per array element, which takes tens of
seconds on a model with a 262k-token vocabulary. This reader walks the header with
``struct`` and reads numeric arrays with one ``numpy.frombuffer`` each; tensor bytes are
slices of one read-only memory map. It is used on files that intake has already validated.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import InvalidInput

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_NUMPY: dict[int, str] = {
    0: "<u1",
    1: "<i1",
    2: "<u2",
    3: "<i2",
    4: "<u4",
    5: "<i4",
    6: "<f4",
    7: "<u1",
    10: "<u8",
    11: "<i8",
    12: "<f8",
}
STRING = 8
ARRAY = 9


@dataclass(frozen=True)
class MetadataValue:
    value: Any
    type: int
    """GGUF value type (``gguf.GGUFValueType``)."""
    sub_type: int | None = None
    """Element type of an array."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    """GGUF order (``ne0`` first); numpy's shape is the reverse."""
    type: int
    """``gguf.GGMLQuantizationType``."""
    offset: int
    """Absolute offset of the tensor's bytes in the file."""
    n_bytes: int


class GGUFFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self._pos = 0
        try:
            self.metadata, self.tensors = self._parse()
        except (struct.error, UnicodeDecodeError, ValueError, IndexError) as exc:
            self.close()
            raise InvalidInput(f"{path.name} is not a readable GGUF file: {exc}") from exc

    def close(self) -> None:
        try:
            self._map.close()
        except BufferError:
            # Arrays still view the map (an exception's traceback can hold them): it is
            # unmapped when the last of them goes. The file is closed either way, and the
            # error that is propagating, if any, is not masked by this one.
            pass
        finally:
            self._file.close()

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        entry = self.metadata.get(key)
        return default if entry is None else entry.value

    @property
    def architecture(self) -> str:
        return str(self.get("general.architecture", ""))

    def arch_get(self, key: str, default: Any = None) -> Any:
        return self.get(f"{self.architecture}.{key}", default)

    def tensor(self, name: str) -> TensorInfo:
        for info in self.tensors:
            if info.name == name:
                return info
        raise KeyError(name)

    def raw(self, info: TensorInfo) -> npt.NDArray[np.uint8]:
        return np.frombuffer(self._map, dtype=np.uint8, count=info.n_bytes, offset=info.offset)

    def dequantized(self, info: TensorInfo) -> npt.NDArray[np.float32]:
        """The tensor as float32 in numpy order (``shape[::-1]``)."""
        import gguf

        qtype = gguf.GGMLQuantizationType(info.type)
        data = gguf.quants.dequantize(self.raw(info), qtype)
        return np.asarray(data, dtype=np.float32).reshape(info.shape[::-1])

    # -- parsing -------------------------------------------------------------------------

    def _read(self, fmt: str, size: int) -> Any:
        value = struct.unpack_from(fmt, self._map, self._pos)[0]
        self._pos += size
        return value

    def _string(self) -> str:
        length = self._read("<Q", 8)
        start = self._pos
        self._pos += length
        if self._pos > len(self._map):
            raise ValueError("string past the end of the file")
        return self._map[start : self._pos].decode("utf-8")

    def _value(self, vtype: int) -> MetadataValue:
        if vtype == STRING:
            return MetadataValue(self._string(), vtype)
        if vtype == ARRAY:
            sub = self._read("<I", 4)
            count = self._read("<Q", 8)
            if sub == STRING:
                return MetadataValue([self._string() for _ in range(count)], vtype, sub)
            if sub not in _NUMPY:
                raise ValueError(f"unsupported array element type {sub}")
            dtype = np.dtype(_NUMPY[sub])
            items = np.frombuffer(self._map, dtype=dtype, count=count, offset=self._pos)
            self._pos += count * dtype.itemsize
            values = [bool(v) for v in items] if sub == 7 else items.tolist()
            return MetadataValue(values, vtype, sub)
        if vtype not in _SCALARS:
            raise ValueError(f"unsupported metadata type {vtype}")
        fmt, size = _SCALARS[vtype]
        return MetadataValue(self._read(fmt, size), vtype)

    def _parse(self) -> tuple[dict[str, MetadataValue], list[TensorInfo]]:
        import gguf

        if self._map[:4] != b"GGUF":
            raise ValueError("bad magic")
        self._pos = 4
        version = self._read("<I", 4)
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        n_tensors = self._read("<Q", 8)
        n_kv = self._read("<Q", 8)
        metadata: dict[str, MetadataValue] = {}
        for _ in range(n_kv):
            key = self._string()
            metadata[key] = self._value(self._read("<I", 4))
        raw_infos = []
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._read("<I", 4)
            shape = tuple(self._read("<Q", 8) for _ in range(n_dims))
            qtype = self._read("<I", 4)
            offset = self._read("<Q", 8)
            raw_infos.append((name, shape, qtype, offset))
        alignment_entry = metadata.get("general.alignment")
        alignment = int(alignment_entry.value) if alignment_entry else 32
        data_start = -(-self._pos // alignment) * alignment
        tensors = []
        for name, shape, qtype, offset in raw_infos:
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(qtype)]
            elements = int(np.prod(shape)) if shape else 1
            n_bytes = elements // block * type_size
            start = data_start + offset
            if start + n_bytes > len(self._map):
                raise ValueError(f"tensor {name} lies past the end of the file")
            tensors.append(TensorInfo(name, shape, qtype, start, n_bytes))
        return metadata, tensors
