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

    # Gateway (docs/gateway.md).
    gateway_workers: int = Field(default=2, ge=1)
    """Worker slots: generations that run at once (each has its own llama.cpp context)."""
    gateway_queue_size: int = Field(default=32, ge=0)
    """Requests that may wait for a slot; beyond that the gateway answers 429."""
    gateway_retry_after_s: int = Field(default=2, ge=1)
    gateway_memory_budget_mb: int = Field(default=8192, ge=64)
    """Loaded models are unloaded least-recently-used when this estimate would be exceeded."""
    gateway_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    gateway_max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    gateway_max_n: int = Field(default=4, ge=1)
    """The largest ``n`` (choices per request) a client may ask for."""
    gateway_max_embedding_inputs: int = Field(default=256, ge=1)

    # Lifecycle (docs/lifecycle.md).
    policy_file: Path | None = None
    """Policy for stage transitions; default: modelyard.toml or policy.yaml in the home."""

    # Governance and audit (docs/governance.md).
    audit_checkpoint_every: int = Field(default=100, ge=1)
    """Sign a checkpoint (sequence number + head hash) every N audit records."""
    audit_retention_days: int | None = Field(default=None, ge=1)
    """``modelyard audit purge`` removes records older than this (unset: keep all)."""
    audit_store_text: str = Field(default="text", pattern="^(text|hash)$")
    """``text``: prompts/answers stored encrypted (redacted per PII policy); ``hash``: digests."""
    pii_default_policy: str = Field(default="off", pattern="^(off|redact-logs|redact|block)$")
    """PII policy for keys and teams that set none."""
    pii_phone_regions: str = "US,GB,DE,FR,NL,ES,IT,BE,PL,SE"
    """Regions whose national phone formats the PII detector recognises (others need +CC)."""

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'modelyard.db'}"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def audit_dir(self) -> Path:
        """Audit signing key, subject secret and signed checkpoints: outside the database."""
        return self.home / "audit"

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
