"""``quantize``: a registered GGUF version → a new version at another quantization level.

The quantized file is written to a temporary path under the home, then imported through
intake like any other file (validated, content-addressed, registered in one transaction)
with ``origin="quantized"`` and lineage naming the source version, its digest, the level
and both sizes. The temporary file is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import InvalidInput
from modelyard.intake.importer import execute_import, plan_import
from modelyard.quantize.levels import bits_per_weight, is_quantized, normalise_level
from modelyard.quantize.llama_quantize import quantize_file
from modelyard.store.disk_space import require_free


@dataclass(frozen=True)
class QuantizeRequest:
    source: str
    level: str
    name: str | None = None
    allow_requantize: bool = False
    threads: int | None = None


def default_name(source: ModelVersion, level: str) -> str:
    return f"{source.name}-{level.lower()}"


def check_source(source: ModelVersion, level: str, allow_requantize: bool) -> None:
    if source.format != "gguf":
        raise InvalidInput(
            f"{source.ref} is a {source.format} model; llama.cpp quantizes GGUF files",
            param="model",
        )
    current = source.metadata.get("quantization")
    if current and str(current).upper() == level:
        raise InvalidInput(f"{source.ref} is already {level}", param="type")
    if is_quantized(current) and not allow_requantize:
        raise InvalidInput(
            f"{source.ref} is already quantized ({current}): quantizing it again stacks a "
            f"second rounding error on the first and gives a worse {level} than quantizing "
            "from full precision. Quantize an F32/F16/BF16 version instead (a tuned version "
            "is F16), or pass --allow-requantize to do it anyway",
            param="model",
        )


def current_level(source: ModelVersion) -> str | None:
    value = source.metadata.get("quantization")
    return str(value) if value else None


def expected_size(size_bytes: int, *, current_level: str | None, level: str) -> int:
    """About how large ``level``'s file will be, from the source's size and precision (the
    source's size when its precision is unknown)."""
    now, then = bits_per_weight(current_level), bits_per_weight(level)
    return int(size_bytes * then / now) if now and then else size_bytes


def quantize_version(
    request: QuantizeRequest,
    registry: Registry,
    settings: Settings,
    *,
    created_by: str | None = None,
) -> ModelVersion:
    level = normalise_level(request.level)
    source = registry.resolve(request.source)
    check_source(source, level, request.allow_requantize)
    name = request.name or default_name(source, level)
    source_path = registry.blobs.path_for(source.files[0].sha256)
    work = settings.home / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    # The output, then its copy into the store (the same disk, usually): twice its size.
    expected = expected_size(source.size_bytes, current_level=current_level(source), level=level)
    require_free(work, 2 * expected, f"quantizing {source.ref} to {level}")
    fd, tmp_name = tempfile.mkstemp(prefix=f"quantize-{level.lower()}-", suffix=".gguf", dir=work)
    os.close(fd)
    target = Path(tmp_name)
    try:
        quantize_file(
            source_path,
            target,
            level,
            allow_requantize=request.allow_requantize,
            threads=request.threads or settings.n_threads,
        )
        lineage = {
            "method": "llama.cpp quantize",
            "source": source.ref,
            "source_digest": source.digest,
            "source_quantization": source.metadata.get("quantization"),
            "type": level,
            "requantized": is_quantized(source.metadata.get("quantization")),
            "source_size_bytes": source.size_bytes,
            "size_bytes": target.stat().st_size,
        }
        plan = plan_import(target, name, settings)
        return execute_import(
            plan,
            registry,
            origin="quantized",
            parent=source.ref,
            lineage=lineage,
            created_by=created_by,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
