"""The canonical form of an audit record and the chain hash over it.

A record's hash is ``SHA-256(prev_hash || "\\n" || canonical_json(fields))`` where
``fields`` are all of the record's columns except ``seq`` and ``hash`` (the order in the
chain is carried by ``prev_hash``). Canonical JSON: keys sorted, no whitespace, UTF-8.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

HASHED_FIELDS = (
    "kind",
    "at",
    "actor",
    "team",
    "route",
    "target",
    "blob_sha256",
    "status",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "client",
    "data_subject",
    "text_mode",
    "prompt_ct",
    "response_ct",
    "prompt_sha256",
    "response_sha256",
    "details",
)


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def record_hash(fields: dict[str, Any], prev_hash: str) -> str:
    body = {name: fields.get(name) for name in HASHED_FIELDS}
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json(body))
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def iso_now() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    """UTC, fixed width, so that string order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
