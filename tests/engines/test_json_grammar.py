"""response_format → GBNF grammar."""

from __future__ import annotations

import pytest

from modelyard.engines.json_grammar import grammar_for
from modelyard.errors import InvalidInput


def test_text_and_none_are_unconstrained() -> None:
    assert grammar_for(None) is None
    assert grammar_for({"type": "text"}) is None


def test_json_object_and_schema_give_grammars() -> None:
    assert "root" in (grammar_for({"type": "json_object"}) or "")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    grammar = grammar_for({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert grammar is not None and '\\"a\\"' in grammar


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "xml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"schema": []}},
        {"type": "json_schema", "json_schema": {"schema": {"type": "no-such-type"}}},
        {"type": "json_schema", "json_schema": {"schema": {"$ref": "#/nowhere"}}},
    ],
)
def test_bad_formats_are_invalid_input(fmt: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as caught:
        grammar_for(fmt)
    assert caught.value.param == "response_format"
