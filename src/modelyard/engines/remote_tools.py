"""Tool calls through a remote endpoint, carried as text.

An upstream answers a request with ``tools`` with ``tool_calls`` (streamed as deltas:
the id and name first, then the arguments in fragments). The gateway's layers only see
text: the PII screen reads, redacts and restores it, the audit log stores it. So the remote
engine writes each finished tool call into the answer's text as a *frame*::

    \\n<tool_call name="get_weather" id="call_1">\\n{"city": "Paris"}\\n</tool_call>\\n

(the arguments as the upstream wrote them, screened like any answer text), and the chat
route reads the frames back out (:func:`split_frames` for a whole answer,
:class:`FrameDemux` for a stream cut anywhere) into OpenAI's ``tool_calls``. The same frames
stand for an assistant message's ``tool_calls`` in a chat's history
(:mod:`modelyard.engines.remote_messages`), so a transcript reads the same both ways.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPEN = '\n<tool_call name="'
"""What every frame starts with (the demultiplexer looks for it)."""
CLOSE = "\n</tool_call>\n"
_STRING = r'"((?:[^"\\\n]|\\.)*)"'
_HEADER = re.compile(r"\n<tool_call name=" + _STRING + " id=" + _STRING + ">\n")
_FRAME = re.compile(_HEADER.pattern + r"(.*?)" + re.escape(CLOSE), re.DOTALL)
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,96}")


@dataclass(frozen=True)
class ToolCall:
    """One tool call as OpenAI's API shapes it (``arguments`` is JSON text)."""

    id: str
    name: str
    arguments: str

    def to_json(self, index: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return out if index is None else {"index": index, **out}


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def frame_header(name: str, call_id: str) -> str:
    return f"\n<tool_call name={json.dumps(name)} id={json.dumps(call_id)}>\n"


def frame(call: ToolCall) -> str:
    """``call`` as text (see the module docstring)."""
    return frame_header(call.name, call.id) + call.arguments + CLOSE


def _unquote(text: str) -> str:
    try:
        value = json.loads(f'"{text}"')
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def _call(match: re.Match[str]) -> ToolCall:
    call_id = _unquote(match.group(2))
    return ToolCall(
        call_id if _ID.fullmatch(call_id) else new_call_id(),
        _unquote(match.group(1)),
        match.group(3),
    )


def split_frames(text: str) -> tuple[str, list[ToolCall]]:
    """``(content, tool calls)`` of a whole answer: the frames taken out of its text."""
    calls = [_call(m) for m in _FRAME.finditer(text)]
    return (_FRAME.sub("", text), calls) if calls else (text, [])


@dataclass
class FrameDemux:
    """Reads frames out of a stream of text pieces cut anywhere (by the upstream, by the
    PII filter): :meth:`feed` returns content text and whole tool calls, in order."""

    buffer: str = ""
    calls: int = 0
    """Tool calls read so far (their ``index`` in the answer)."""

    def feed(self, text: str) -> list[str | ToolCall]:
        self.buffer += text
        out: list[str | ToolCall] = []
        while self.buffer:
            start = self.buffer.find(OPEN)
            if start != 0:  # text first; hold back an end that may begin a frame
                keep = start if start > 0 else len(self.buffer) - _open_prefix(self.buffer)
                if keep == 0:
                    break
                out.append(self.buffer[:keep])
                self.buffer = self.buffer[keep:]
                continue
            end = self.buffer.find(CLOSE)
            if end < 0:
                break  # a frame still arriving
            whole = self.buffer[: end + len(CLOSE)]
            self.buffer = self.buffer[end + len(CLOSE) :]
            match = _FRAME.fullmatch(whole)
            if match is None:
                out.append(whole)  # not a frame after all: text
            else:
                out.append(_call(match))
                self.calls += 1
        return out

    def flush(self) -> str:
        """What is left at the end of the answer (text: an unfinished frame is not a call)."""
        rest, self.buffer = self.buffer, ""
        return rest


def _open_prefix(text: str) -> int:
    """The length of the longest end of ``text`` that could begin a frame."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


@dataclass
class _Pending:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class ToolCallDeltas:
    """Collects an upstream's streamed ``tool_calls`` deltas (by ``index``) until the answer
    finishes; then :meth:`frames` writes them out as text."""

    pending: dict[int, _Pending] = field(default_factory=dict)

    def add(self, deltas: Any) -> None:
        if not isinstance(deltas, list):
            return
        for position, delta in enumerate(deltas):
            if not isinstance(delta, Mapping):
                continue
            index = delta.get("index")
            key = index if isinstance(index, int) else position
            call = self.pending.setdefault(key, _Pending())
            if isinstance(delta.get("id"), str) and not call.id:
                call.id = delta["id"]
            function = delta.get("function")
            if not isinstance(function, Mapping):
                continue
            name = function.get("name")
            if isinstance(name, str) and name and name != call.name:
                call.name += name  # a name sent in pieces; one sent again whole is kept once
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call.arguments.append(arguments)
            elif isinstance(arguments, Mapping):  # a server that sends an object, not text
                call.arguments.append(json.dumps(arguments, ensure_ascii=False))

    def frames(self) -> str:
        """Every collected call as a frame (in index order), and forget them."""
        calls = [
            ToolCall(p.id if _ID.fullmatch(p.id) else new_call_id(), p.name, "".join(p.arguments))
            for _, p in sorted(self.pending.items())
            if p.name
        ]
        self.pending.clear()
        return "".join(frame(c) for c in calls)
