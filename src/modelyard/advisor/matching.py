"""Which knowledge-base entry a registered model version is (architecture + parameters)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.advisor.schema import KnowledgeBase, ModelEntry

TOLERANCE = 0.10


@dataclass(frozen=True)
class Match:
    entry: ModelEntry
    exact_shape: bool
    """Layers and hidden size agree too, not only the parameter count."""
    alternatives: tuple[str, ...]
    """Other entries equally close (same architecture and shape: e.g. Llama 3.1 / 3.3 70B)."""

    def describe(self) -> str:
        text = f"{self.entry.family} ({self.entry.id})"
        if self.alternatives:
            text += " or " + ", ".join(self.alternatives)
        return text


def match_version(metadata: Mapping[str, Any], kb: KnowledgeBase) -> Match | None:
    arch = metadata.get("architecture")
    params = metadata.get("parameters")
    if not isinstance(arch, str) or not isinstance(params, int) or params <= 0:
        return None
    layers = metadata.get("block_count")
    hidden = metadata.get("embedding_length")
    scored: list[tuple[bool, float, ModelEntry]] = []
    for entry in kb.models:
        a = entry.architecture
        if a.gguf_architecture != arch:
            continue
        distance = abs(params - a.parameters) / a.parameters
        if distance > TOLERANCE:
            continue
        shape = layers == a.layers and hidden == a.hidden_size
        if (layers is not None and layers != a.layers) or (
            hidden is not None and hidden != a.hidden_size
        ):
            continue
        scored.append((shape, distance, entry))
    if not scored:
        return None
    scored.sort(key=lambda s: (not s[0], s[1]))
    best_shape, best_distance, best = scored[0]
    alternatives = tuple(
        e.id
        for shape, distance, e in scored[1:]
        if shape == best_shape and abs(distance - best_distance) < 0.005
    )
    return Match(best, best_shape, alternatives)


def family_of(metadata: Mapping[str, Any]) -> str | None:
    """The knowledge-base family a version's metadata matches (for ``models show``)."""
    match = match_version(metadata, load_knowledge_base())
    return match.describe() if match else None
