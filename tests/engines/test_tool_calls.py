"""Tool calls parsed out of an answer."""

from __future__ import annotations

import json

from modelyard.engines.tool_calls import parse_tool_calls

NAMES = {"get_weather"}


def test_tagged_blocks() -> None:
    text = 'Sure.<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    [call] = parse_tool_calls(text, NAMES)
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Oslo"}
    assert call.to_json()["type"] == "function"


def test_bare_json_with_parameters() -> None:
    [call] = parse_tool_calls('{"name": "get_weather", "parameters": {"city": "Rome"}}', NAMES)
    assert json.loads(call.arguments) == {"city": "Rome"}


def test_ordinary_content_and_unknown_tools_are_not_calls() -> None:
    assert parse_tool_calls("It is sunny.", NAMES) == []
    assert parse_tool_calls('{"name": "rm_rf", "arguments": {}}', NAMES) == []
    assert parse_tool_calls("<tool_call>not json</tool_call>", NAMES) == []
    assert parse_tool_calls('{"answer": 42}', NAMES) == []
