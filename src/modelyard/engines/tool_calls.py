"""Tool calls in a model's answer: the formats chat templates teach models to write.

Recognised: ``<tool_call>{...}</tool_call>`` blocks (Qwen, Hermes and others), and an answer
that is one JSON object (or a list of them) naming a function, with ``arguments`` or
``parameters`` (Llama 3.1 style). Anything else is ordinary content.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str
    """The arguments as a JSON text, as OpenAI's API returns them."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": f"call_{secrets.token_hex(12)}",
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def _call(value: Any, known: set[str]) -> ToolCall | None:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    if known and value["name"] not in known:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(value["name"], json.dumps(arguments))


def parse_tool_calls(text: str, tool_names: set[str]) -> list[ToolCall]:
    """The tool calls in ``text`` (empty when it is ordinary content)."""
    blocks = _TAGGED.findall(text)
    candidates: list[Any] = []
    try:
        if blocks:
            candidates = [json.loads(block) for block in blocks]
        else:
            whole = json.loads(text.strip())
            candidates = whole if isinstance(whole, list) else [whole]
    except json.JSONDecodeError:
        return []
    calls = [_call(c, tool_names) for c in candidates]
    if not calls or any(c is None for c in calls):
        return []
    return [c for c in calls if c is not None]
