"""Read served requests from a JSON-lines file (for ``cost report --usage FILE``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from modelyard.cost.chargeback import InMemoryUsage, Served
from modelyard.errors import InvalidInput


def read_usage_file(path: Path) -> InMemoryUsage:
    """Lines of ``{"key", "team", "at", "prompt_tokens", "completion_tokens"}``."""
    served = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read usage file {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            at = datetime.fromisoformat(item["at"])
            served.append(
                Served(
                    key=str(item["key"]),
                    team=item.get("team"),
                    at=at if at.tzinfo else at.replace(tzinfo=UTC),
                    prompt_tokens=int(item["prompt_tokens"]),
                    completion_tokens=int(item["completion_tokens"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path}:{number}: not a usage record ({exc})") from exc
    return InMemoryUsage(tuple(served))
