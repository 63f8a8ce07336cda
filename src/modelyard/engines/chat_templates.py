"""Chat messages → one prompt string, via the model's template or a per-architecture default.

A GGUF's ``tokenizer.chat_template`` is untrusted input: it is rendered only in jinja2's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`, so a template that reaches for
attributes or methods outside the sandbox fails the request with a clear error and runs no
code. Models without a template get their architecture's turn format (Gemma's
``<start_of_turn>`` turns for the bundled default), or a plain fallback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from modelyard.errors import EngineFault, InvalidInput

ROLES = ("system", "developer", "user", "assistant", "tool")
GEMMA_ARCHITECTURES = ("gemma", "gemma2", "gemma3", "gemma3n", "gemma-embedding")
CHATML_ARCHITECTURES = ("qwen2", "qwen3", "qwen2moe", "qwen3moe")


@dataclass(frozen=True)
class ChatPrompt:
    prompt: str
    stop: tuple[str, ...]
    """Stop strings that end the assistant's turn in this format."""


class _TemplateRaised(Exception):
    """A template called ``raise_exception`` (its way of rejecting the conversation)."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now(UTC).strftime(fmt)


def message_text(message: Mapping[str, Any]) -> str:
    """A message's content as text (strings, or a list of text parts)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise InvalidInput(
                f"message content of type {kind!r} is not supported; send text",
                param="messages",
            )
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def render_chat(
    metadata: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    model: str = "the model",
) -> ChatPrompt:
    if not messages:
        raise InvalidInput("messages must contain at least one message", param="messages")
    template = metadata.get("chat_template")
    if isinstance(template, str) and template.strip():
        return _render_template(template, messages, tools, model)
    if tools:
        raise InvalidInput(
            f"{model} has no chat template that supports tool calling; send the request "
            "without tools, or use a model whose template takes tools",
            param="tools",
            code="tools_not_supported",
        )
    architecture = str(metadata.get("architecture") or "").lower()
    if architecture in GEMMA_ARCHITECTURES:
        return gemma_prompt(messages)
    if architecture in CHATML_ARCHITECTURES:
        return _chatml_prompt(messages)
    return _plain_prompt(messages)


def _render_template(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    model: str,
) -> ChatPrompt:
    if tools and "tools" not in template:
        raise InvalidInput(
            f"the chat template of {model} does not support tool calling",
            param="tools",
            code="tools_not_supported",
        )
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    plain = [{**m, "content": message_text(m)} for m in messages]
    try:
        prompt = env.from_string(template).render(
            messages=plain,
            tools=list(tools) if tools else None,
            add_generation_prompt=True,
            bos_token="",
            eos_token="",
        )
    except SecurityError as exc:
        raise EngineFault(
            f"the chat template of {model} tried an operation the sandbox forbids ({exc}); "
            "it was not run"
        ) from exc
    except _TemplateRaised as exc:
        raise InvalidInput(
            f"the chat template of {model} rejected the messages: {exc}", param="messages"
        ) from exc
    except TemplateError as exc:
        raise EngineFault(f"the chat template of {model} is broken: {exc}") from exc
    return ChatPrompt(prompt, ())


def _split_system(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[Mapping[str, Any]]]:
    system = [message_text(m) for m in messages if m.get("role") in ("system", "developer")]
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
    return "\n\n".join(system), rest


def gemma_prompt(messages: Sequence[Mapping[str, Any]]) -> ChatPrompt:
    """Gemma's turn format; system text goes at the top of the first user turn."""
    system, rest = _split_system(messages)
    turns = []
    for index, message in enumerate(rest):
        role = "model" if message.get("role") == "assistant" else "user"
        text = message_text(message)
        if index == 0 and system:
            text = f"{system}\n\n{text}" if role == "user" else text
        turns.append(f"<start_of_turn>{role}\n{text.strip()}<end_of_turn>\n")
    if not rest and system:
        turns.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    return ChatPrompt("".join(turns) + "<start_of_turn>model\n", ("<end_of_turn>",))


def _chatml_prompt(messages: Sequence[Mapping[str, Any]]) -> ChatPrompt:
    turns = [
        f"<|im_start|>{'system' if m.get('role') == 'developer' else m.get('role')}\n"
        f"{message_text(m)}<|im_end|>\n"
        for m in messages
    ]
    return ChatPrompt("".join(turns) + "<|im_start|>assistant\n", ("<|im_end|>",))


def _plain_prompt(messages: Sequence[Mapping[str, Any]]) -> ChatPrompt:
    names = {"system": "System", "developer": "System", "assistant": "Assistant", "tool": "Tool"}
    lines = [f"{names.get(str(m.get('role')), 'User')}: {message_text(m)}" for m in messages]
    return ChatPrompt("\n".join(lines) + "\nAssistant:", ("\nUser:",))
