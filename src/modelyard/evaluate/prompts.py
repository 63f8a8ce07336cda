"""Turning a row into the prompt the engine sees.

An ``input`` row is a raw prompt, sent as written. A ``messages`` row is rendered by the
gateway's chat renderer (:func:`modelyard.engines.chat_templates.render_chat`) from the
version's metadata, so an evaluation or pilot judges the very prompt the gateway would send
for those messages, parts and stop strings included. For an endpoint version (``remote``) a
``messages`` row stays messages, as the gateway sends them: the upstream applies its own
template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelyard.engines.base import Prompt
from modelyard.engines.chat_templates import render_chat
from modelyard.engines.remote_messages import messages_prompt
from modelyard.evaluate.data import EvalRow


def row_chat(
    row: EvalRow, metadata: Mapping[str, Any], *, remote: bool = False
) -> tuple[Prompt, tuple[str, ...]]:
    """The row's prompt and the stop strings its chat format adds (none for raw input)."""
    if row.input is not None:
        return row.input, ()
    assert row.messages is not None  # parse_row guarantees one of the two
    if remote:
        chat = messages_prompt(row.messages, tools=None, model="evaluation")
    else:
        chat = render_chat(metadata, row.messages)
    return chat.parts, chat.stop


def row_prompt(row: EvalRow, metadata: Mapping[str, Any]) -> Prompt:
    return row_chat(row, metadata)[0]
