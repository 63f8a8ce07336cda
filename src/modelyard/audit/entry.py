"""What a caller hands the audit log (:class:`AuditEntry`) and what it gets back
(:class:`Appended`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TEXT_MODES = ("full", "redacted", "hash", "none")


@dataclass
class AuditEntry:
    """What a caller records. ``prompt``/``response`` are the texts as they may be stored
    (already redacted when the PII policy says so); ``text_mode`` says which they are."""

    kind: str = "request"
    actor: str | None = None
    team: str | None = None
    route: str | None = None
    target: str | None = None
    blob_sha256: str | None = None
    status: int | None = None
    latency_ms: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    client: str | None = None
    subject: str | None = None
    text_mode: str = "none"
    prompt: str | None = None
    response: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: str
