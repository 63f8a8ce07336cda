"""A GGUF chat template rendered in the sandbox, with message text kept apart from its own text.

A GGUF's ``tokenizer.chat_template`` is untrusted input: it is rendered only in jinja2's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`, so a template that reaches for
attributes or methods outside the sandbox fails the request with a clear error and runs no
code.

The template is rendered twice: once as it is, and once with each message's text wrapped in
markers that no message can contain (private-use characters around a random nonce drawn for
this render alone). The marked rendering shows where message text landed; the plain one is
the prompt. The two must agree once the markers are gone, allowing only for a template that
trims the message text (Gemma's does), and every marked span must be its message's text.
Anything else (a template that rewrites message text) is an :class:`EngineFault`: message
text is never let through as template text, where control-token strings would be parsed.

The sandbox also bounds what a render may produce: output is drawn chunk by chunk and counted,
and string/list repetition, concatenation and powers are checked before they allocate. Time
and memory are bounded from outside: the gateway, evaluation and tune render templates in
child processes under a wall-clock timeout and a memory cap
(:mod:`modelyard.engines.template_sandbox`), never on the caller's thread.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from modelyard.engines.base import PromptPart
from modelyard.errors import EngineFault, InvalidInput

_OPEN, _OPEN_END, _CLOSE, _CLOSE_END = "\ue000", "\ue001", "\ue002", "\ue003"

Segment = tuple[str, int | None]
"""A piece of the marked rendering: template text (None) or message ``i``'s text."""


DEFAULT_MAX_OUTPUT_CHARS = 4 * 1024 * 1024
"""The most characters one rendering may produce unless the caller says otherwise."""


class _TemplateRaised(Exception):
    """A template called ``raise_exception`` (its way of rejecting the conversation)."""


class _OverBudget(Exception):
    """A render produced, or was about to build, more text than its budget allows."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with repetition, concatenation and powers bounded by size."""

    intercepted_binops = frozenset({"*", "+", "**"})

    def __init__(self, *, max_chars: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_chars = max_chars

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    self._check(len(seq) * max(times, 0), "repeats a value")
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                self._check(len(left) + len(right), "builds a value")
        elif (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and abs(left).bit_length() * right > 64 * 1024
        ):
            raise _OverBudget("computes a number too large to print")
        return super().call_binop(context, operator, left, right)

    def _check(self, size: int, what: str) -> None:
        if size > self.max_chars:
            raise _OverBudget(f"{what} of {size} items (limit {self.max_chars})")


def merge_parts(parts: Iterable[PromptPart]) -> tuple[PromptPart, ...]:
    """Drop empty parts and join neighbours of the same kind (linear: texts are joined once)."""
    runs: list[tuple[bool, list[str]]] = []
    for part in parts:
        if not part.text:
            continue
        if runs and runs[-1][0] == part.special:
            runs[-1][1].append(part.text)
        else:
            runs.append((part.special, [part.text]))
    return tuple(PromptPart("".join(texts), special) for special, texts in runs)


def render_template_parts(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    model: str,
    *,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    now: datetime | None = None,
) -> tuple[PromptPart, ...]:
    """Render ``template`` over ``messages`` (whose ``content`` is already text) as parts:
    the template's own text ``special=True``, message text ``special=False``.

    Runs in the caller's thread with only the size bounds; callers that face untrusted
    templates go through :class:`modelyard.engines.template_sandbox.TemplateRenderer`."""
    env = BoundedSandbox(
        max_chars=max_output_chars,
        trim_blocks=True,
        lstrip_blocks=True,
        # {% break %} / {% continue %}: chat templates written for HF transformers use them
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.globals["raise_exception"] = _raise_exception
    now = now or datetime.now(UTC)  # one clock for both renders
    env.globals["strftime_now"] = now.strftime
    try:
        compiled = env.from_string(template)
    except TemplateError as exc:
        raise EngineFault(f"the chat template of {model} is broken: {exc}") from exc
    contents = [str(m.get("content") or "") for m in messages]
    nonce = secrets.token_hex(16)
    while any(nonce in c for c in contents):  # a marker no message contains
        nonce = secrets.token_hex(16)
    marked = [
        {**m, "content": f"{_OPEN}{nonce}{i}{_OPEN_END}{c}{_CLOSE}{nonce}{_CLOSE_END}" if c else c}
        for i, (m, c) in enumerate(zip(messages, contents, strict=True))
    ]

    # the marked rendering carries two markers per message on top of the plain one
    marked_budget = 2 * max_output_chars + len(marked) * (2 * len(nonce) + 32)

    def render(with_messages: list[dict[str, Any]], budget: int) -> str:
        return _render(compiled, with_messages, tools, model, budget)

    plain = render([dict(m) for m in messages], max_output_chars)
    segments = _segments(render(marked, marked_budget), nonce, contents, model)
    parts = _align(segments, contents, plain)
    if parts is None:
        raise EngineFault(
            f"the chat template of {model} renders differently when message text is traced "
            "(it inspects or rewrites the text); modelyard cannot tell message text from "
            "template text in its output, so it does not use it"
        )
    return parts


def _render(
    compiled: Template,
    messages: list[dict[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    model: str,
    max_chars: int,
) -> str:
    """One rendering, drawn chunk by chunk so that its size is counted as it grows."""
    try:
        chunks: list[str] = []
        size = 0
        for chunk in compiled.generate(
            messages=messages,
            tools=list(tools) if tools else None,
            add_generation_prompt=True,
            bos_token="",
            eos_token="",
        ):
            size += len(chunk)
            if size > max_chars:
                raise _OverBudget(f"printed more than {max_chars} characters")
            chunks.append(chunk)
        return "".join(chunks)
    except _OverBudget as exc:
        raise InvalidInput(
            f"the chat template of {model} went over its rendering budget for these messages "
            f"({exc}); the request was refused",
            param="messages",
            code="template_budget_exceeded",
        ) from exc
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


def _segments(marked: str, nonce: str, contents: list[str], model: str) -> list[Segment]:
    """Split the marked rendering into template text and message spans; each span must be
    exactly its message's text."""
    pattern = re.compile(f"{_OPEN}{nonce}(\\d+){_OPEN_END}|{_CLOSE}{nonce}{_CLOSE_END}")
    segments: list[Segment] = []
    position, inside = 0, None
    for match in pattern.finditer(marked):
        text = marked[position : match.start()]
        opening = match.group(1)
        if (opening is None) == (inside is None):  # nested open, or close without open
            raise _mangled(model)
        if opening is not None:
            segments.append((text, None))
            inside = int(opening)
        else:
            assert inside is not None
            if inside >= len(contents) or text != contents[inside]:
                raise _mangled(model)
            segments.append((text, inside))
            inside = None
        position = match.end()
    if inside is not None:
        raise _mangled(model)
    segments.append((marked[position:], None))
    return segments


def _mangled(model: str) -> EngineFault:
    return EngineFault(
        f"the chat template of {model} rewrites message text; modelyard cannot tell message "
        "text from template text in its output, so it does not use it"
    )


def _variants(text: str) -> list[str]:
    """A message's text as a template may print it: as is, or trimmed."""
    return list(dict.fromkeys((text, text.strip(), text.rstrip(), text.lstrip())))


def _align(
    segments: list[Segment], contents: list[str], plain: str
) -> tuple[PromptPart, ...] | None:
    """Parts that join to ``plain``: template segments as they are, each message span as its
    text or a trimmed form of it; None when no such reading exists."""
    # reach[i] maps a position in ``plain`` reached after i segments to (previous position, text)
    reach: list[dict[int, tuple[int, str]]] = [{0: (0, "")}]
    for text, index in segments:
        options = [text] if index is None else _variants(contents[index])
        step: dict[int, tuple[int, str]] = {}
        for start in reach[-1]:
            for option in options:
                if plain.startswith(option, start):
                    step.setdefault(start + len(option), (start, option))
        if not step:
            return None
        reach.append(step)
    if len(plain) not in reach[-1]:
        return None
    chosen: list[PromptPart] = []
    end = len(plain)
    for (_, index), step in zip(reversed(segments), reversed(reach[1:]), strict=True):
        start, option = step[end]
        chosen.append(PromptPart(option, special=index is None))
        end = start
    return merge_parts(reversed(chosen))
