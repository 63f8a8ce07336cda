"""What an endpoint version is: a catalog version whose weights run elsewhere.

Its ``format`` is ``endpoint``; its metadata's ``endpoint`` entry holds the replica URLs,
the model name the upstream serves, and the identity the upstream reported when it was
registered (never a credential). Its digest is the SHA-256 of that identity's canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelyard.catalog.records import ModelVersion
from modelyard.errors import InvalidInput

ENDPOINT_FORMAT = "endpoint"
REMOTE_ORIGIN = "remote"


def is_endpoint(version: ModelVersion) -> bool:
    return version.format == ENDPOINT_FORMAT


@dataclass(frozen=True)
class EndpointSpec:
    urls: tuple[str, ...]
    served_model: str
    identity: Mapping[str, Any]

    @classmethod
    def of(cls, version: ModelVersion) -> EndpointSpec:
        entry = version.metadata.get("endpoint")
        if not is_endpoint(version) or not isinstance(entry, Mapping):
            raise InvalidInput(f"{version.ref} is not an endpoint version", param="model")
        urls = entry.get("urls")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise InvalidInput(f"{version.ref} records no replica URLs", param="model")
        return cls(
            tuple(urls),
            str(entry.get("served_model") or ""),
            dict(entry.get("identity") or {}),
        )

    def identity_document(self) -> dict[str, Any]:
        """What the digest covers: where, which model, and who the upstream said it is."""
        return {
            "kind": ENDPOINT_FORMAT,
            "urls": list(self.urls),
            "served_model": self.served_model,
            "identity": dict(self.identity),
        }

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.identity_document())).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8 (the audit log's canonical form)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
