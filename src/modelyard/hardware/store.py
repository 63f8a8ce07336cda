"""Named hardware profiles, one JSON file each under ``$MODELYARD_HOME/hardware/``."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from modelyard.atomic_write import write_text
from modelyard.catalog.names import validate_name
from modelyard.config import Settings
from modelyard.errors import InvalidInput, NotFound
from modelyard.hardware.profile import HardwareProfile


class ProfileStore:
    def __init__(self, settings: Settings) -> None:
        self.directory = settings.home / "hardware"

    def _path(self, name: str) -> Path:
        validate_name(name, what="profile name")
        return self.directory / f"{name}.json"

    def save(self, profile: HardwareProfile) -> Path:
        """Write atomically: temp file, fsync, rename, fsync the directory."""
        return write_text(self._path(profile.name), profile.model_dump_json(indent=2))

    def load(self, name: str) -> HardwareProfile:
        path = self._path(name)
        if not path.exists():
            known = ", ".join(p.name for p in self.list()) or "none yet"
            raise NotFound(f"no hardware profile {name!r} (known: {known})")
        return load_profile_file(path)

    def list(self) -> list[HardwareProfile]:
        if not self.directory.is_dir():
            return []
        return [load_profile_file(p) for p in sorted(self.directory.glob("*.json"))]

    def remove(self, name: str) -> None:
        path = self._path(name)
        if not path.exists():
            raise NotFound(f"no hardware profile {name!r}")
        path.unlink()


def load_profile_file(path: Path) -> HardwareProfile:
    try:
        return HardwareProfile.model_validate_json(path.read_text("utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read hardware profile {path}: {exc.strerror}") from exc
    except ValidationError as exc:
        raise InvalidInput(f"{path} is not a valid hardware profile: {exc}") from exc
