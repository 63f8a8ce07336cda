"""Model references: ``NAME`` (the newest version) or ``NAME@N``."""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.errors import InvalidInput
from modelyard.intake.names import validate_name


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def parse_ref(text: str) -> ModelRef:
    name, sep, version_text = text.partition("@")
    validate_name(name)
    if not sep:
        return ModelRef(name)
    if not version_text.isdigit() or int(version_text) < 1:
        raise InvalidInput(
            f"invalid model reference {text!r}: the version after '@' is a number from 1",
            param="model",
        )
    return ModelRef(name, int(version_text))
