"""Plain, immutable records the catalog hands out (no database objects leak out of it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class VersionFile:
    path: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    digest: str
    format: str
    size_bytes: int
    metadata: dict[str, Any]
    origin: str
    parent: str | None
    lineage: dict[str, Any]
    source_path: str
    created_by: str
    created_at: datetime
    files: tuple[VersionFile, ...] = field(default_factory=tuple)
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ref"] = self.ref
        data["created_at"] = self.created_at.isoformat()
        data["files"] = [asdict(f) for f in self.files]
        data["aliases"] = list(self.aliases)
        return data


@dataclass(frozen=True)
class Alias:
    name: str
    target: str
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "updated_at": self.updated_at.isoformat()}


@dataclass(frozen=True)
class NewVersion:
    """Everything needed to register a version; the catalog assigns the number."""

    name: str
    digest: str
    format: str
    size_bytes: int
    metadata: dict[str, Any]
    files: tuple[VersionFile, ...]
    source_path: str
    created_by: str
    origin: str = "imported"
    parent: str | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    number: int | None = None
    """Ask for this version number (a deployment reproduced elsewhere); default: the next."""
