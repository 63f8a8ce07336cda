"""A model's quantization family: its versions and every version quantized from one of them."""

from __future__ import annotations

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.quantize.levels import bits_per_weight


def level_of(version: ModelVersion) -> str:
    return str(version.metadata.get("quantization") or "unknown").upper()


def family(registry: Registry, name: str) -> list[ModelVersion]:
    """GGUF versions of ``name`` plus their quantized descendants, most precise first."""
    members = {v.ref: v for v in registry.list_versions(name) if v.format == "gguf"}
    everything = registry.list_versions()
    grew = True
    while grew:
        grew = False
        for version in everything:
            if (
                version.ref not in members
                and version.parent in members
                and version.origin == "quantized"
                and version.format == "gguf"
            ):
                members[version.ref] = version
                grew = True
    return sorted(
        members.values(), key=lambda v: (-bits_per_weight(level_of(v)), -v.size_bytes, v.ref)
    )
