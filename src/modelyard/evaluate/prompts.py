"""Turning a row into the prompt text the engine sees.

This is the one place that renders chat ``messages`` for evaluation, so it can switch to the
gateway's chat templates when those exist. For now: Gemma's turn format for the gemma
family, and a plain ``Role: text`` transcript for anything else.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.evaluate.data import EvalRow


def _gemma(messages: Sequence[dict[str, str]]) -> str:
    parts: list[str] = []
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    for message in messages:
        if message["role"] == "system":
            continue
        role = "model" if message["role"] == "assistant" else "user"
        content = message["content"]
        if system and role == "user":
            content, system = f"{system}\n\n{content}", ""
        parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    return "".join(parts) + "<start_of_turn>model\n"


def _plain(messages: Sequence[dict[str, str]]) -> str:
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


def render_messages(messages: Sequence[dict[str, str]], architecture: str | None) -> str:
    if architecture and architecture.startswith("gemma"):
        return _gemma(messages)
    return _plain(messages)


def row_prompt(row: EvalRow, architecture: str | None) -> str:
    if row.input is not None:
        return row.input
    assert row.messages is not None  # parse_row guarantees one of the two
    return render_messages(row.messages, architecture)
