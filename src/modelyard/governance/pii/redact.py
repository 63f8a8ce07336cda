"""Placeholders: ``<EMAIL_1>`` for the first e-mail address in a request, the same
placeholder for the same value, and restoration of the caller's own values in the answer.

Values the *model* produced (not in the request) get placeholders too, but those are never
restored: the caller sees the placeholder.
"""

from __future__ import annotations

import re
from collections import Counter

from modelyard.governance.pii.analyzer import Analyzer
from modelyard.governance.pii.entities import Entity

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*)_(\d+)>")


class Redactor:
    """One per request: remembers which placeholder stands for which value."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self._placeholder: dict[tuple[str, str], str] = {}
        self._restorable: dict[str, str] = {}
        self._numbers: Counter[str] = Counter()
        self.found_types: set[str] = set()

    def redact(self, text: str, *, restorable: bool = True) -> str:
        return self.redact_entities(text, self.analyzer.find(text), restorable=restorable)

    def redact_entities(self, text: str, entities: list[Entity], *, restorable: bool) -> str:
        out: list[str] = []
        position = 0
        for entity in entities:
            out.append(text[position : entity.start])
            out.append(self._placeholder_for(entity, restorable))
            position = entity.end
        out.append(text[position:])
        return "".join(out)

    def _placeholder_for(self, entity: Entity, restorable: bool) -> str:
        self.found_types.add(entity.type)
        key = (entity.type, entity.text)
        placeholder = self._placeholder.get(key)
        if placeholder is None:
            self._numbers[entity.type] += 1
            placeholder = f"<{entity.type}_{self._numbers[entity.type]}>"
            self._placeholder[key] = placeholder
            if restorable:
                self._restorable[placeholder] = entity.text
        return placeholder

    def mark(self, kind: str) -> str:
        """A fresh placeholder for text of kind ``kind`` that is withheld, not restorable
        (the streaming redactor's ``<REDACTED_n>``)."""
        self._numbers[kind] += 1
        return f"<{kind}_{self._numbers[kind]}>"

    def restore(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self._restorable.get(m.group(), m.group()), text)

    @property
    def has_restorable(self) -> bool:
        return bool(self._restorable)
