"""Child-process entry point that parses an untrusted GGUF file's metadata.

Run as ``python -m modelyard.intake.gguf_probe FD MEMORY_MB CPU_SECONDS``: FD is a read-only
descriptor the parent passes down, open on the copy already landed in the blob store (never
the source path, which could be swapped). It caps its own memory (RLIMIT_DATA, so the
read-only memory map of a large file does not count) and CPU time before importing the
parser, then prints one JSON object on stdout. Any failure is a non-zero exit with the reason
on stderr. The parent (:mod:`modelyard.intake.gguf_reader`) adds a wall-clock timeout and
kills the child when it runs over.

Beyond parsing, :func:`check_sanity` refuses metadata that would crash or mislead the engine:
non-finite floats, a vocabulary with duplicate tokens (llama.cpp asserts on it), vocabulary
side arrays of another length, tensors with impossible dimensions, misaligned, overlapping or
outside the file, and hyperparameters too large for the file to hold.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import resource
import sys
from collections import Counter
from typing import Any, BinaryIO

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
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_CONTEXT = 1 << 26
VOCAB_SIDE_ARRAYS = ("tokenizer.ggml.scores", "tokenizer.ggml.token_type")
PARSER_ERRORS = (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeError)
"""What the gguf library raises on malformed input; the probe reports them as InvalidGGUF."""


class InvalidGGUF(ValueError):
    """The file is not a GGUF modelyard accepts; the message names the offending field."""


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


def probe(handle: BinaryIO) -> dict[str, Any]:
    """The metadata of the GGUF open as ``handle``; raises InvalidGGUF or MemoryError."""
    from modelyard.errors import UnsafeModel
    from modelyard.intake.gguf_header import check_header

    file_size = os.fstat(handle.fileno()).st_size
    try:
        check_header(handle.fileno(), "the file")
    except UnsafeModel as exc:
        raise InvalidGGUF(exc.message) from exc
    try:
        reader = _bounded_reader_class()(handle, "r")
        check_sanity(reader, file_size)
        return _describe(reader)
    except InvalidGGUF:
        raise
    except RecursionError as exc:
        raise InvalidGGUF("nested too deeply") from exc
    except PARSER_ERRORS as exc:
        raise InvalidGGUF(str(exc)[:300] or type(exc).__name__) from exc


def _describe(reader: Any) -> dict[str, Any]:
    values = {key: _scalar(reader, key) for key in SCALAR_KEYS}
    arch = values["general.architecture"] or "unknown"
    arch_values = {key: _scalar(reader, f"{arch}.{key}") for key in ARCH_KEYS}
    tensor_types: Counter[str] = Counter()
    params = 0
    for tensor in reader.tensors:
        params += _element_count(tensor)
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


def _element_count(tensor: Any) -> int:
    return math.prod(int(d) for d in tensor.field.parts[3])


def check_sanity(reader: Any, file_size: int) -> None:
    """Refuse metadata that parses but would crash or mislead whatever loads the model."""
    _check_floats(reader)
    _check_vocabulary(reader)
    _check_tensors(reader, file_size)
    _check_hyperparameters(reader, file_size)


def _check_floats(reader: Any) -> None:
    import gguf
    import numpy as np

    floats = {gguf.GGUFValueType.FLOAT32: np.float32, gguf.GGUFValueType.FLOAT64: np.float64}
    arch = _scalar(reader, "general.architecture")
    for key, field in reader.fields.items():
        if not field.types or field.types[-1] not in floats:
            continue
        if len(field.types) == 1:
            values = field.parts[-1]
        else:
            values = field.parts[-1].view(floats[field.types[-1]])
            if key.startswith("tokenizer."):  # scores may be -inf by design; NaN never is
                if np.isnan(values).any():
                    raise InvalidGGUF(f"metadata {key} holds NaN")
                continue
            if not (isinstance(arch, str) and key.startswith(f"{arch}.")):
                continue
        if not np.isfinite(values).all():
            raise InvalidGGUF(f"metadata {key} is not a finite number")


def _string_array(reader: Any, key: str) -> list[bytes] | None:
    field = reader.fields.get(key)
    if field is None or len(field.types) < 2:
        return None
    import gguf

    if field.types[1] != gguf.GGUFValueType.STRING:
        raise InvalidGGUF(f"metadata {key} is not an array of strings")
    raw = field.parts[-1].tobytes()
    items = []
    offs = 0
    for _ in range(int(field.parts[-2][0])):
        length = int.from_bytes(raw[offs : offs + 8], "little")
        items.append(raw[offs + 8 : offs + 8 + length])
        offs += 8 + length
    return items


def _check_vocabulary(reader: Any) -> None:
    tokens = _string_array(reader, "tokenizer.ggml.tokens")
    if tokens is None:
        return
    seen: dict[bytes, int] = {}
    for index, token in enumerate(tokens):
        first = seen.setdefault(token, index)
        if first != index:
            raise InvalidGGUF(
                f"metadata tokenizer.ggml.tokens lists token {token[:40]!r} twice "
                f"(entries {first} and {index}); llama.cpp refuses such a vocabulary"
            )
    for key in VOCAB_SIDE_ARRAYS:
        length = _array_length(reader, key)
        if length is not None and length != len(tokens):
            raise InvalidGGUF(f"metadata {key} has {length} entries for {len(tokens)} tokens")


def _check_tensors(reader: Any, file_size: int) -> None:
    import gguf

    alignment = int(reader.alignment)
    spans = []
    for tensor in reader.tensors:
        dims = [int(d) for d in tensor.field.parts[3]]
        n_dims = int(tensor.field.parts[2][0])
        name = tensor.name
        if not 1 <= n_dims <= MAX_DIMS or len(dims) != n_dims:
            raise InvalidGGUF(f"tensor {name} has {n_dims} dimensions (at most {MAX_DIMS})")
        if any(d < 1 for d in dims):
            raise InvalidGGUF(f"tensor {name} has an empty dimension {dims}")
        block, type_size = gguf.GGML_QUANT_SIZES[tensor.tensor_type]
        if dims[0] % block:
            raise InvalidGGUF(f"tensor {name}: row of {dims[0]} is not a multiple of {block}")
        n_bytes = math.prod(dims) * type_size // block
        begin = int(tensor.data_offset)
        end = begin + n_bytes
        if (begin - reader.data_offset) % alignment:
            raise InvalidGGUF(f"tensor {name} is not aligned to {alignment} bytes")
        if end > file_size:
            raise InvalidGGUF(f"truncated: tensor {name} ends at byte {end}, file has {file_size}")
        spans.append((begin, end, name))
    spans.sort()
    for (_, end, name), (begin, _, following) in itertools.pairwise(spans):
        if begin < end:
            raise InvalidGGUF(f"tensors {name} and {following} overlap")


def _check_hyperparameters(reader: Any, file_size: int) -> None:
    arch = _scalar(reader, "general.architecture")
    if not isinstance(arch, str):
        return
    values = {key: _scalar(reader, f"{arch}.{key}") for key in ARCH_KEYS}
    for key, value in values.items():
        if value is not None and not (isinstance(value, int) and value > 0):
            raise InvalidGGUF(f"metadata {arch}.{key} is {value!r}, not a positive integer")
    if (context := values["context_length"]) is not None and context > MAX_CONTEXT:
        raise InvalidGGUF(f"metadata {arch}.context_length is {context}, more than {MAX_CONTEXT}")
    blocks = values["block_count"]
    if blocks is not None and blocks > max(len(reader.tensors), 1):
        raise InvalidGGUF(
            f"metadata {arch}.block_count is {blocks}, more than the file's "
            f"{len(reader.tensors)} tensors"
        )
    embedding, heads = values["embedding_length"], values["attention.head_count"]
    if embedding is not None and heads is not None and heads > embedding:
        raise InvalidGGUF(
            f"metadata {arch}.attention.head_count ({heads}) exceeds "
            f"{arch}.embedding_length ({embedding})"
        )
    vocab = _array_length(reader, "tokenizer.ggml.tokens")
    if embedding is not None and vocab is not None and embedding * vocab > 8 * file_size:
        raise InvalidGGUF(
            f"metadata {arch}.embedding_length ({embedding}) x {vocab} tokens needs more "
            f"than one bit per weight beyond the file's {file_size} bytes"
        )


def main(argv: list[str]) -> int:
    fd, memory_mb, cpu_s = int(argv[0]), int(argv[1]), int(argv[2])
    _limit(memory_mb, cpu_s)
    try:
        with os.fdopen(fd, "rb") as handle:
            result = probe(handle)
    except MemoryError:
        print("the GGUF metadata needs more memory than allowed", file=sys.stderr)
        return 3
    except InvalidGGUF as exc:
        print(f"invalid GGUF: {exc}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
