"""What the PII detectors find."""

from __future__ import annotations

from dataclasses import dataclass

# In priority order: where two findings overlap, the earlier type wins.
ENTITY_TYPES = (
    "EMAIL",
    "IBAN",
    "CREDIT_CARD",
    "US_SSN",
    "NATIONAL_ID",
    "IP_ADDRESS",
    "PHONE",
    "PERSON",
)


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int
    text: str

    def overlaps(self, other: Entity) -> bool:
        return self.start < other.end and other.start < self.end


def resolve_overlaps(found: list[Entity]) -> list[Entity]:
    """Keep the higher-priority (then longer) finding where findings overlap; sort by start."""
    ranked = sorted(found, key=lambda e: (ENTITY_TYPES.index(e.type), -(e.end - e.start), e.start))
    kept: list[Entity] = []
    for entity in ranked:
        if not any(entity.overlaps(other) for other in kept):
            kept.append(entity)
    return sorted(kept, key=lambda e: e.start)
