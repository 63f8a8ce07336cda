"""atheris fuzz targets for intake's readers of untrusted bytes.

Run as ``python tests/fuzz/targets.py TARGET CORPUS_DIR [libFuzzer flags]`` with TARGET one
of ``gguf`` (the in-process header check and the probe child's parser and sanity checks),
``safetensors`` (the header and layout check) or ``kinds`` (the JSON, text and SentencePiece
checks). The property, for every input: the reader returns a result or raises modelyard's
refusal (``UnsafeModel``, or ``InvalidGGUF`` / ``MemoryError`` in the probe, which the parent
turns into ``UnsafeModel``); any other exception is a crash that libFuzzer reports, with the
input, and a non-zero exit. Hangs are caught by ``-timeout``, memory by ``-rss_limit_mb`` and
the same RLIMIT_DATA the probe child runs under.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import struct
import sys
from collections.abc import Callable

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports(include=["modelyard", "gguf"]):
    import gguf  # noqa: F401 - the probe imports it lazily; import it here, instrumented

    from modelyard.errors import UnsafeModel
    from modelyard.intake import file_kinds, gguf_probe, safe_json
    from modelyard.intake.gguf_header import check_header
    from modelyard.intake.safetensors_header import check_safetensors

MEMORY_LIMIT = 1536 * 1024 * 1024


def _memfd(data: bytes) -> io.BufferedReader:
    fd = os.memfd_create("fuzz")
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return os.fdopen(fd, "rb")


def gguf_input(data: bytes) -> None:
    with _memfd(data) as handle:
        with contextlib.suppress(UnsafeModel):
            check_header(handle.fileno(), "input")
        with contextlib.suppress(gguf_probe.InvalidGGUF, MemoryError):
            gguf_probe.probe(handle)


def safetensors_input(data: bytes) -> None:
    """The input as a whole file, then framed: its first byte sizes the data area and the
    rest is the header, so that mutations explore the JSON rather than break the length."""
    framed = struct.pack("<Q", len(data) - 1) + data[1:] + bytes(16 * data[0]) if data else b""
    for blob in (data, framed):
        with _memfd(blob) as handle, contextlib.suppress(UnsafeModel):
            check_safetensors(handle, "input")


def kinds_input(data: bytes) -> None:
    checks = (file_kinds.check_json, file_kinds.check_text, file_kinds.check_sentencepiece)
    with _memfd(data) as handle:
        for check in checks:
            with contextlib.suppress(UnsafeModel):
                check(handle, "input")
    with contextlib.suppress(UnsafeModel):
        safe_json.loads(data, what="input", max_bytes=1 << 20)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "gguf": gguf_input,
    "safetensors": safetensors_input,
    "kinds": kinds_input,
}


def main() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
