"""Model references: ``NAME`` (the newest version) or ``NAME@N``."""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.catalog.names import validate_name
from modelyard.errors import InvalidInput

MAX_VERSION = 2**31 - 1
"""Versions are 32-bit integers in the database; a larger number is no version."""


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
    # ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() then refuses.
    if not (
        version_text.isascii()
        and version_text.isdigit()
        and len(version_text) <= 10
        and 1 <= int(version_text) <= MAX_VERSION
    ):
        raise InvalidInput(
            f"invalid model reference {text!r}: the version after '@' is a number "
            f"from 1 to {MAX_VERSION}",
            param="model",
        )
    return ModelRef(name, int(version_text))
