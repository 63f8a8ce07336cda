"""All settings, read in one place.

Every setting comes from the environment (prefix ``MODELYARD_``); nothing else in the
package reads ``os.environ`` for configuration. Settings are built explicitly by the
entry points (CLI, server, tests) and passed down; there is no module-level instance.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".modelyard"


class Settings(BaseSettings):
    """modelyard's settings. See docs/configuration.md for the full list."""

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    """Where the database (by default), blobs and checkpoints live."""

    database_url: str | None = None
    """SQLAlchemy URL. Default: SQLite at ``<home>/modelyard.db``."""

    redis_url: str | None = None
    """Optional Redis for shared limits and caches (in-process when unset)."""

    # Intake: limits for the child process that parses untrusted GGUF headers.
    probe_timeout_s: float = 60.0
    probe_memory_mb: int = 2048

    # Engine defaults.
    n_ctx: int = 4096
    n_threads: int | None = None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'modelyard.db'}"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
