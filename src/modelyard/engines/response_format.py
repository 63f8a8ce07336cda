"""OpenAI ``response_format`` → the JSON schema an engine worker constrains its output to.

The schema is handed to llama.cpp, which compiles it to a grammar inside the worker process:
a schema its compiler rejects is a 400 for that request and cannot take the gateway down.
Before that, bounds here keep a request from making the worker spend unbounded time or
memory on a hostile schema: its size, its nesting depth and its repetition counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelyard.errors import InvalidInput

ANY_OBJECT: dict[str, Any] = {"type": "object"}
MAX_SCHEMA_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_REPEAT = 1024
"""Largest minItems/maxItems/minLength/maxLength: a grammar unrolls repetition counts."""
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")


def _bad(message: str) -> InvalidInput:
    return InvalidInput(f"response_format.json_schema: {message}", param="response_format")


def _check(node: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _bad(f"the schema nests deeper than {MAX_DEPTH} levels")
    if isinstance(node, Mapping):
        for key in _COUNTS:
            value = node.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _bad(f"{key} must be a non-negative integer")
            if value > MAX_REPEAT:
                raise _bad(f"{key} {value} is over the limit of {MAX_REPEAT}")
        for low, high in (("minItems", "maxItems"), ("minLength", "maxLength")):
            lo, hi = node.get(low), node.get(high)
            if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
                raise _bad(f"{low} is greater than {high}: no value can match")
        for value in node.values():
            _check(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check(value, depth + 1)


def schema_for(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The schema for a request's ``response_format`` (None when the output is free text)."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(ANY_OBJECT)
    if kind != "json_schema":
        raise InvalidInput(
            f"response_format.type must be text, json_object or json_schema (got {kind!r})",
            param="response_format",
        )
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema", {}), Mapping):
        raise _bad("it must be an object with a 'schema' object")
    schema = dict(spec.get("schema") or ANY_OBJECT)
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _bad("the schema is not plain JSON") from exc
    if size > MAX_SCHEMA_BYTES:
        raise _bad(f"the schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}")
    _check(schema, 0)
    return schema
