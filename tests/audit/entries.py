"""Helpers shared by the audit tests."""

from __future__ import annotations

from modelyard.audit import AuditEntry


def request_entry(n: int, *, subject: str = "alice", team: str = "research") -> AuditEntry:
    return AuditEntry(
        actor=f"key-{n % 2}",
        team=team,
        route="chat",
        target="gemma3-270m@1",
        blob_sha256="ab" * 32,
        status=200,
        latency_ms=12,
        prompt_tokens=10 + n,
        completion_tokens=5,
        client="127.0.0.1",
        subject=subject,
        text_mode="full",
        prompt=f"prompt number {n}",
        response=f"answer number {n}",
        details={"max_tokens": 16, "temperature": 0.0},
    )
