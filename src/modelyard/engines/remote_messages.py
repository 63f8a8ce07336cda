"""Chat messages for a remote endpoint: kept as messages, screened as text.

An endpoint applies its own chat template, so the gateway sends it the **messages**, not a
prompt rendered here. The chat still travels through the gateway's layers as a prompt of
parts (:class:`~modelyard.engines.base.MessageStart` headers, then each message's text as
user parts), so the PII screen redacts message text, limits estimate from it and the audit
log stores the transcript ``prompt_text`` gives; :func:`prompt_messages` turns what reaches
the engine (redacted where the policy says so) back into messages.

An assistant message's ``tool_calls`` become frames (:mod:`modelyard.engines.remote_tools`):
a :class:`ToolCallStart` header, the arguments as user text (screened like any message
text), the frame's end. The request's ``tools`` ride along in a :class:`ToolsOffer` part at
the end (template text, as a local model's template writes tools: never redacted); the
transcript names the tools offered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.engines.base import MessageStart, Prompt, PromptPart, is_messages, prompt_text
from modelyard.engines.chat_templates import ROLES, ChatPrompt, message_text
from modelyard.engines.remote_tools import CLOSE, frame_header
from modelyard.errors import InvalidInput

_KEPT_FIELDS = ("name", "tool_call_id")
"""Message fields other than role and content that go upstream as they came."""


@dataclass(frozen=True)
class ToolCallStart(PromptPart):
    """Opens one tool call of an assistant message (its frame's header, template text); the
    arguments follow as user parts, and a plain template part closes it."""

    call_id: str = ""
    name: str = ""


@dataclass(frozen=True)
class ToolsOffer(PromptPart):
    """The request's ``tools``, ``tool_choice`` and ``parallel_tool_calls``, as JSON."""

    tools: str = "[]"
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None


def messages_prompt(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None,
    model: str,
    tool_choice: Any = None,
    parallel_tool_calls: bool | None = None,
) -> ChatPrompt:
    """The chat as a messages prompt (no stop strings: the upstream's template ends turns)."""
    if not messages:
        raise InvalidInput("messages must contain at least one message", param="messages")
    parts: list[PromptPart] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLES:
            raise InvalidInput(
                f"messages[{index}] has role {role!r}; use one of " + ", ".join(ROLES),
                param="messages",
            )
        fields = tuple(
            (key, json.dumps(message[key], ensure_ascii=False, sort_keys=True))
            for key in _KEPT_FIELDS
            if message.get(key) is not None
        )
        header = f"{chr(10) * 2 if index else ''}{role}: "
        parts.append(MessageStart(header, True, role=str(role), fields=fields))
        text = message_text(message)
        if text:
            parts.append(PromptPart(text, False))
        parts.extend(_history_calls(message.get("tool_calls"), index))
    if tools:
        parts.append(_offer(tools, tool_choice, parallel_tool_calls))
    return ChatPrompt(tuple(parts), ())


def _history_calls(calls: Any, index: int) -> list[PromptPart]:
    """An assistant message's ``tool_calls`` as frames, the arguments as user text."""
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise InvalidInput(f"messages[{index}].tool_calls must be a list", param="messages")
    parts: list[PromptPart] = []
    for number, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise InvalidInput(
                f"messages[{index}].tool_calls[{number}] needs a function with a name",
                param="messages",
            )
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        call_id = call.get("id") if isinstance(call.get("id"), str) else ""
        name = function["name"]
        parts.append(ToolCallStart(frame_header(name, call_id), True, call_id=call_id, name=name))
        if arguments:
            parts.append(PromptPart(arguments, False))
        parts.append(PromptPart(CLOSE, True))
    return parts


def _offer(
    tools: Sequence[Mapping[str, Any]], tool_choice: Any, parallel: bool | None
) -> ToolsOffer:
    names = [
        str(t["function"].get("name"))
        for t in tools
        if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)
    ]
    return ToolsOffer(
        "\n\ntools: " + ", ".join(names),
        True,
        tools=json.dumps(list(tools), ensure_ascii=False),
        tool_choice=None if tool_choice is None else json.dumps(tool_choice, ensure_ascii=False),
        parallel_tool_calls=parallel,
    )


def prompt_messages(prompt: Prompt) -> list[dict[str, Any]]:
    """The messages a messages prompt carries (with the text as screened by the layers)."""
    if not is_messages(prompt):
        raise ValueError("not a messages prompt")
    assert not isinstance(prompt, str)
    messages: list[dict[str, Any]] = []
    call: dict[str, Any] | None = None
    for part in prompt:
        if isinstance(part, MessageStart):
            message: dict[str, Any] = {"role": part.role, "content": ""}
            message.update({key: json.loads(value) for key, value in part.fields})
            messages.append(message)
            call = None
        elif isinstance(part, ToolCallStart):
            call = {"id": part.call_id, "type": "function"}
            call["function"] = {"name": part.name, "arguments": ""}
            messages[-1].setdefault("tool_calls", []).append(call)
        elif part.special:
            call = None  # a frame's end, or the tools offered
        elif call is not None:
            call["function"]["arguments"] += part.text
        else:
            messages[-1]["content"] += part.text
    for message in messages:
        if message["role"] == "assistant" and not message["content"] and "tool_calls" in message:
            message["content"] = None
    return messages


def prompt_tools(prompt: Prompt) -> dict[str, Any]:
    """The request fields a messages prompt's :class:`ToolsOffer` carries (none without)."""
    if isinstance(prompt, str):
        return {}
    offer = next((p for p in prompt if isinstance(p, ToolsOffer)), None)
    if offer is None:
        return {}
    fields: dict[str, Any] = {"tools": json.loads(offer.tools)}
    if offer.tool_choice is not None:
        fields["tool_choice"] = json.loads(offer.tool_choice)
    if offer.parallel_tool_calls is not None:
        fields["parallel_tool_calls"] = offer.parallel_tool_calls
    return fields


def completion_prompt(prompt: Prompt) -> str:
    """A raw prompt's text for ``/v1/completions``."""
    return prompt_text(prompt)
