"""Evaluation data: JSON Lines rows read, checked and hashed before anything runs.

A row is ``{"input": "...", "expected": ...}`` or ``{"messages": [...], "expected": ...}``;
``choices`` (a list of option texts) is needed for the ``choice`` metric and ``schema`` (a
JSON Schema object) may carry the schema for ``json-schema-valid``. Other keys are kept
and ignored. Perplexity reads a plain text file instead (see :mod:`modelyard.evaluate.perplexity`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInput


@dataclass(frozen=True)
class EvalRow:
    index: int
    input: str | None
    messages: tuple[dict[str, str], ...] | None
    expected: Any
    choices: tuple[str, ...] | None = None
    schema: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _messages(value: Any, where: str) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{where}: 'messages' must be a non-empty list")
    out: list[dict[str, str]] = []
    for message in value:
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise InvalidInput(f"{where}: each message needs string 'role' and 'content'")
        out.append({"role": message["role"], "content": message["content"]})
    return tuple(out)


def parse_row(index: int, data: Any, where: str) -> EvalRow:
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: a row must be a JSON object")
    has_input = isinstance(data.get("input"), str)
    if has_input == ("messages" in data):
        raise InvalidInput(f"{where}: a row needs exactly one of 'input' (a string) or 'messages'")
    if "expected" not in data:
        raise InvalidInput(f"{where}: the row has no 'expected'")
    choices = data.get("choices")
    if choices is not None and (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) and c for c in choices)
    ):
        raise InvalidInput(f"{where}: 'choices' must be a list of at least two non-empty strings")
    schema = data.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise InvalidInput(f"{where}: 'schema' must be a JSON object")
    known = {"input", "messages", "expected", "choices", "schema"}
    return EvalRow(
        index=index,
        input=data["input"] if has_input else None,
        messages=None if has_input else _messages(data["messages"], where),
        expected=data["expected"],
        choices=tuple(choices) if choices is not None else None,
        schema=schema,
        extra={k: v for k, v in data.items() if k not in known},
    )


def load_rows(path: Path) -> list[EvalRow]:
    """Every row of a JSONL file (blank lines skipped); the first bad line is an error."""
    if not path.is_file():
        raise InvalidInput(f"no such data file: {path}")
    rows: list[EvalRow] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{where}: not valid JSON ({exc.msg})") from exc
            rows.append(parse_row(len(rows), data, where))
    if not rows:
        raise InvalidInput(f"{path} has no rows")
    return rows
