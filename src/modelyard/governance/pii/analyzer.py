"""One entry point over all detectors: :meth:`Analyzer.find` returns non-overlapping entities."""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.config import Settings
from modelyard.governance.pii import checksums
from modelyard.governance.pii.entities import Entity, resolve_overlaps
from modelyard.governance.pii.ids import IdDetector
from modelyard.governance.pii.names import persons
from modelyard.governance.pii.phones import phones


class Analyzer:
    def __init__(self, phone_regions: Sequence[str] = ("US", "GB", "DE", "FR")) -> None:
        self.phone_regions = tuple(r.strip().upper() for r in phone_regions if r.strip())
        self.ids = IdDetector()

    @classmethod
    def from_settings(cls, settings: Settings) -> Analyzer:
        return cls(settings.pii_phone_regions.split(","))

    def find(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        found.extend(checksums.emails(text))
        found.extend(checksums.ibans(text))
        found.extend(checksums.cards(text))
        found.extend(self.ids.find(text))
        found.extend(checksums.ip_addresses(text))
        found.extend(phones(text, self.phone_regions))
        found.extend(persons(text))
        return resolve_overlaps(found)
