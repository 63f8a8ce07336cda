"""Chat messages → one prompt, via the model's template or a per-architecture default.

The GGUF's own ``tokenizer.chat_template`` is the source of truth: the gateway, evaluation,
pilots, tune's data preparation and ``tune score`` all render chats here, so each sees the
prompt the gateway sends. The template runs in jinja2's sandbox (see
:mod:`modelyard.engines.chat_jinja`), in a child process under a time and memory budget
(:mod:`modelyard.engines.template_sandbox`). Models without a template get their architecture's turn
format (Gemma's ``<start_of_turn>`` turns, ChatML), or a plain ``Role: text`` transcript.

A prompt is a tuple of :class:`~modelyard.engines.base.PromptPart`: the format's own text is
``special=True``, every message's text (system, user, assistant, tool) ``special=False``, so
a message that contains ``<start_of_turn>`` or ``<|im_start|>`` cannot forge a turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.engines.base import PromptPart, prompt_text
from modelyard.engines.chat_jinja import merge_parts
from modelyard.engines.template_sandbox import TemplateRenderer, shared_renderer
from modelyard.errors import InvalidInput

ROLES = ("system", "developer", "user", "assistant", "tool")
GEMMA_ARCHITECTURES = ("gemma", "gemma2", "gemma3", "gemma3n", "gemma-embedding")
CHATML_ARCHITECTURES = ("qwen2", "qwen3", "qwen2moe", "qwen3moe")


@dataclass(frozen=True)
class ChatPrompt:
    parts: tuple[PromptPart, ...]
    """Template text (special) and message text (not special), in order; what engines take."""
    stop: tuple[str, ...]
    """Stop strings that end the assistant's turn in this format."""

    @property
    def prompt(self) -> str:
        """The whole prompt as one string (for display, hashing and token estimates)."""
        return prompt_text(self.parts)


def _special(text: str) -> PromptPart:
    return PromptPart(text, special=True)


def _user(text: str) -> PromptPart:
    return PromptPart(text, special=False)


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
    renderer: TemplateRenderer | None = None,
) -> ChatPrompt:
    """The chat as a prompt. A model's own template is rendered by ``renderer`` (default: the
    process's shared one) in a child process; blocking, so async callers use a thread."""
    if not messages:
        raise InvalidInput("messages must contain at least one message", param="messages")
    for index, message in enumerate(messages):
        if message.get("role") not in ROLES:  # a role is printed as template text
            raise InvalidInput(
                f"messages[{index}] has role {message.get('role')!r}; use one of "
                + ", ".join(ROLES),
                param="messages",
            )
    template = metadata.get("chat_template")
    if isinstance(template, str) and template.strip():
        return _render_template(template, messages, tools, model, renderer or shared_renderer())
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
    renderer: TemplateRenderer,
) -> ChatPrompt:
    if tools and "tools" not in template:
        raise InvalidInput(
            f"the chat template of {model} does not support tool calling",
            param="tools",
            code="tools_not_supported",
        )
    plain = [{**m, "content": message_text(m)} for m in messages]
    return ChatPrompt(renderer.render(template, plain, tools, model), ())


def _split_system(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[Mapping[str, Any]]]:
    system = [message_text(m) for m in messages if m.get("role") in ("system", "developer")]
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
    return "\n\n".join(system), rest


def gemma_prompt(messages: Sequence[Mapping[str, Any]]) -> ChatPrompt:
    """Gemma's turn format; system text goes at the top of the first turn (as Gemma's own
    template puts it), message text is trimmed."""
    system, rest = _split_system(messages)
    parts: list[PromptPart] = []
    for index, message in enumerate(rest):
        role = "model" if message.get("role") == "assistant" else "user"
        parts.append(_special(f"<start_of_turn>{role}\n"))
        if index == 0 and system:
            parts += [_user(system), _special("\n\n")]
        parts += [_user(message_text(message).strip()), _special("<end_of_turn>\n")]
    if not rest and system:
        parts += [_special("<start_of_turn>user\n"), _user(system), _special("<end_of_turn>\n")]
    parts.append(_special("<start_of_turn>model\n"))
    return ChatPrompt(merge_parts(parts), ("<end_of_turn>",))


def _chatml_prompt(messages: Sequence[Mapping[str, Any]]) -> ChatPrompt:
    parts: list[PromptPart] = []
    for m in messages:
        role = "system" if m.get("role") == "developer" else m.get("role")
        parts += [_special(f"<|im_start|>{role}\n"), _user(message_text(m))]
        parts.append(_special("<|im_end|>\n"))
    parts.append(_special("<|im_start|>assistant\n"))
    return ChatPrompt(merge_parts(parts), ("<|im_end|>",))


def _plain_prompt(messages: Sequence[Mapping[str, Any]]) -> ChatPrompt:
    names = {"system": "System", "developer": "System", "assistant": "Assistant", "tool": "Tool"}
    parts: list[PromptPart] = []
    for index, m in enumerate(messages):
        label = names.get(str(m.get("role")), "User")
        parts += [_special(f"{chr(10) if index else ''}{label}: "), _user(message_text(m))]
    parts.append(_special("\nAssistant:"))
    return ChatPrompt(merge_parts(parts), ("\nUser:",))
