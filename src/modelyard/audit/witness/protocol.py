"""The witness's wire format: one JSON request line, one JSON reply line, per connection.

Requests: ``{"op": "info"}``, ``{"op": "journal"}``, ``{"op": "sign_head", "from_seq",
"from_hash", "bodies", "seq", "hash"}``, ``{"op": "anchors", "through_seq"}``,
``{"op": "sign_purge", "through_seq", "from_seq", "from_hash", "bodies"}``.
Replies: ``{"ok": true, "result": …}`` or ``{"ok": false, "kind": "refused" | "invalid" |
"fault", "code", "message"}``.
"""

from __future__ import annotations

from typing import Any

from modelyard.audit.witness.core import WitnessCore

MAX_REQUEST_BYTES = 256 * 1024 * 1024


def _int(request: dict[str, Any], name: str) -> int:
    value = request.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    return value


def _str(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _bodies(request: dict[str, Any]) -> list[str]:
    value = request.get("bodies")
    if not isinstance(value, list):
        raise ValueError("bodies must be a list")
    return value


def dispatch(core: WitnessCore, request: dict[str, Any]) -> Any:
    """Run one request; ValueError for a malformed one (the caller answers ``invalid``)."""
    op = request.get("op")
    if op == "info":
        return core.info()
    if op == "journal":
        return [s.to_json() for s in core.journal()]
    if op == "sign_head":
        return core.sign_head(
            _int(request, "from_seq"),
            _str(request, "from_hash"),
            _bodies(request),
            _int(request, "seq"),
            _str(request, "hash"),
        ).to_json()
    if op == "anchors":
        return core.anchors(_int(request, "through_seq"))
    if op == "sign_purge":
        return core.sign_purge(
            _int(request, "through_seq"),
            _int(request, "from_seq"),
            _str(request, "from_hash"),
            _bodies(request),
        ).to_json()
    raise ValueError(f"unknown witness operation {op!r}")
