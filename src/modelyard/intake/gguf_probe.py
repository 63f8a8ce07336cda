"""Child-process entry point that parses an untrusted GGUF file's metadata.

Run as ``python -m modelyard.intake.gguf_probe PATH MEMORY_MB CPU_SECONDS``. It caps its own
memory (RLIMIT_DATA, so the read-only memory map of a large file does not count) and CPU time
before importing the parser, then prints one JSON object on stdout. Any failure is a non-zero
exit with the reason on stderr. The parent (:mod:`modelyard.intake.gguf_reader`) adds a
wall-clock timeout and kills the child when it runs over.
"""

from __future__ import annotations

import json
import resource
import sys
from collections import Counter
from pathlib import Path
from typing import Any

SCALAR_KEYS = (
    "general.architecture",
    "general.name",
    "general.basename",
    "general.size_label",
    "general.license",
    "general.license.name",
    "general.file_type",
    "general.quantization_version",
    "general.organization",
    "general.finetune",
    "tokenizer.ggml.model",
    "tokenizer.chat_template",
)
ARCH_KEYS = ("context_length", "embedding_length", "block_count", "attention.head_count")


def _limit(memory_mb: int, cpu_s: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


def _scalar(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None or not field.types:
        return None
    if len(field.types) > 1:  # an array: report only its length
        return None
    value = field.contents()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value


def _quant_name(file_type: Any, tensor_types: Counter[str]) -> str:
    import gguf

    if isinstance(file_type, int):
        try:
            name = gguf.LlamaFileType(file_type).name
        except ValueError:
            name = ""
        for prefix in ("MOSTLY_", "ALL_"):
            name = name.removeprefix(prefix)
        if name:
            return name
    return tensor_types.most_common(1)[0][0] if tensor_types else "unknown"


def _bounded_reader_class() -> Any:
    """``gguf.GGUFReader`` with bounds checks and a fast path for large arrays.

    The stock reader walks every array element in Python (a 262k-token vocabulary takes
    ~25 s of CPU) and trusts declared lengths. This subclass checks every declared string
    and array length against the file size, and skips over arrays in one step: only their
    length is needed for the metadata modelyard records.
    """
    import gguf
    import numpy as np

    class BoundedReader(gguf.GGUFReader):
        def _check(self, offset: int, length: int, what: str) -> None:
            if offset + length > len(self.data):
                raise ValueError(f"truncated: {what} of {length} bytes at offset {offset}")

        def _get_str(self, offset: int) -> tuple[Any, Any]:
            slen = self._get(offset, np.uint64)
            self._check(offset + 8, int(slen[0]), "string")
            return slen, self._get(offset + 8, np.uint8, slen[0])

        def _get_field_parts(self, orig_offs: int, raw_type: int) -> Any:
            if gguf.GGUFValueType(raw_type) != gguf.GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, np.uint32)
            alen = self._get(orig_offs + 4, np.uint64)
            count = int(alen[0])
            offs = orig_offs + 12
            itype = gguf.GGUFValueType(raw_itype[0])
            nptype = self.gguf_scalar_to_np.get(itype)
            if nptype is not None:
                size = count * np.dtype(nptype).itemsize
                self._check(offs, size, "array")
                data = self._get(offs, np.uint8, size)
                return 12 + size, [raw_itype, alen, data], [2], [gguf.GGUFValueType.ARRAY, itype]
            if itype != gguf.GGUFValueType.STRING:
                raise ValueError(f"unsupported nested array of {itype.name}")
            raw = self.data
            end = len(raw)
            for _ in range(count):
                if offs + 8 > end:
                    raise ValueError("truncated: string array")
                offs += 8 + int.from_bytes(raw[offs : offs + 8].tobytes(), "little")
            self._check(0, offs, "string array")
            data = self._get(orig_offs + 12, np.uint8, offs - orig_offs - 12)
            return offs - orig_offs, [raw_itype, alen, data], [2], [gguf.GGUFValueType.ARRAY, itype]

    return BoundedReader


def _array_length(reader: Any, key: str) -> int | None:
    field = reader.fields.get(key)
    if field is None or len(field.types) < 2:
        return None
    return int(field.parts[-2][0])


def probe(path: Path) -> dict[str, Any]:
    file_size = path.stat().st_size
    reader = _bounded_reader_class()(path, "r")
    values = {key: _scalar(reader, key) for key in SCALAR_KEYS}
    arch = values["general.architecture"] or "unknown"
    arch_values = {key: _scalar(reader, f"{arch}.{key}") for key in ARCH_KEYS}

    tensor_types: Counter[str] = Counter()
    params = 0
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > file_size:
            raise ValueError(
                f"truncated: tensor {tensor.name} ends at byte {end}, file has {file_size}"
            )
        params += int(tensor.n_elements)
        tensor_types[tensor.tensor_type.name] += 1

    return {
        "architecture": arch,
        "name": values["general.name"],
        "size_label": values["general.size_label"],
        "parameters": params,
        "context_length": arch_values["context_length"],
        "embedding_length": arch_values["embedding_length"],
        "block_count": arch_values["block_count"],
        "head_count": arch_values["attention.head_count"],
        "quantization": _quant_name(values["general.file_type"], tensor_types),
        "tensor_types": dict(tensor_types),
        "tensor_count": len(reader.tensors),
        "tokenizer": values["tokenizer.ggml.model"],
        "vocab_size": _array_length(reader, "tokenizer.ggml.tokens"),
        "chat_template": values["tokenizer.chat_template"],
        "license": values["general.license"] or values["general.license.name"],
    }


def main(argv: list[str]) -> int:
    path, memory_mb, cpu_s = Path(argv[0]), int(argv[1]), int(argv[2])
    _limit(memory_mb, cpu_s)
    try:
        result = probe(path)
    except MemoryError:
        print("the GGUF metadata needs more memory than allowed", file=sys.stderr)
        return 3
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeError) as exc:
        print(f"invalid GGUF: {exc}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
