"""OpenAI ``response_format`` → a llama.cpp GBNF grammar, so that the output parses.

``json_object`` constrains the output to one JSON object; ``json_schema`` to the given
schema (converted with llama.cpp's own schema converter, which bounds whitespace so a
constrained generation cannot run away in blanks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelyard.errors import InvalidInput

ANY_OBJECT: dict[str, Any] = {"type": "object"}


def schema_to_grammar(schema: Mapping[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        NotImplementedError,
        AssertionError,
    ) as exc:
        raise InvalidInput(
            f"response_format.json_schema.schema cannot be used: {exc}",
            param="response_format",
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(
            "response_format.json_schema.schema is too deeply nested", param="response_format"
        ) from exc


def grammar_for(response_format: Mapping[str, Any] | None) -> str | None:
    """The grammar for a request's ``response_format`` (None when output is free text)."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return schema_to_grammar(ANY_OBJECT)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema", {}), Mapping):
            raise InvalidInput(
                "response_format.json_schema must be an object with a 'schema' object",
                param="response_format",
            )
        return schema_to_grammar(spec.get("schema") or ANY_OBJECT)
    raise InvalidInput(
        f"response_format.type must be text, json_object or json_schema (got {kind!r})",
        param="response_format",
    )
