"""Tool calls through endpoints: the request carries the tools and the history's calls
upstream, the upstream's streamed call deltas come back as frames in the text, and the
frames read back into OpenAI's ``tool_calls`` however the text is cut."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelyard.engines.base import Finish, SamplingParams, TextDelta, prompt_text
from modelyard.engines.remote_engine import request_body
from modelyard.engines.remote_messages import messages_prompt, prompt_messages
from modelyard.engines.remote_tools import (
    FrameDemux,
    ToolCall,
    ToolCallDeltas,
    frame,
    split_frames,
)
from modelyard.errors import InvalidInput
from tests.engines.test_remote_engine import endpoint_version, generate, provider, run
from tests.remote_stub import StubConfig, stub_server

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
HISTORY = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_9", "content": "18 C, sunny"},
]


def test_the_request_carries_tools_choice_and_the_history_calls() -> None:
    chat = messages_prompt(
        HISTORY,
        tools=TOOLS,
        model="remote@1",
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    path, body = request_body(chat.parts, SamplingParams(), "served")
    assert path == "/v1/chat/completions"
    assert body["tools"] == TOOLS
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"] == HISTORY
    transcript = prompt_text(chat.parts)
    assert '<tool_call name="get_weather" id="call_9">\n{"city": "Paris"}' in transcript
    assert transcript.endswith("tools: get_weather")
    # the arguments are user text: the PII screen reads (and may redact) them
    assert any(p.text == '{"city": "Paris"}' and not p.special for p in chat.parts)


def test_without_tools_the_request_has_none() -> None:
    chat = messages_prompt([{"role": "user", "content": "hi"}], tools=None, model="remote@1")
    _, body = request_body(chat.parts, SamplingParams(), "served")
    assert "tools" not in body and "tool_choice" not in body
    assert prompt_messages(chat.parts) == [{"role": "user", "content": "hi"}]


def test_malformed_history_calls_are_the_callers_400() -> None:
    bad = [{"role": "assistant", "tool_calls": [{"id": "x", "function": {}}]}]
    with pytest.raises(InvalidInput, match=r"tool_calls\[0\] needs a function"):
        messages_prompt(bad, tools=None, model="remote@1")


def test_streamed_deltas_collect_into_frames_in_index_order() -> None:
    deltas = ToolCallDeltas()
    deltas.add([{"index": 1, "id": "call_b", "function": {"name": "b", "arguments": ""}}])
    deltas.add([{"index": 0, "id": "call_a", "function": {"name": "a", "arguments": '{"x"'}}])
    deltas.add([{"index": 0, "function": {"arguments": ": 1}"}}])
    deltas.add([{"index": 1, "function": {"name": "b", "arguments": "{}"}}])  # name again
    deltas.add([{"index": 2, "id": "bad id!", "function": {"name": "c", "arguments": {"y": 2}}}])
    content, calls = split_frames("Checking. " + deltas.frames())
    assert content == "Checking. "
    assert [(c.name, c.arguments) for c in calls] == [
        ("a", '{"x": 1}'),
        ("b", "{}"),
        ("c", '{"y": 2}'),
    ]
    assert [c.id for c in calls[:2]] == ["call_a", "call_b"]
    assert calls[2].id.startswith("call_") and " " not in calls[2].id
    assert deltas.frames() == ""


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_the_demux_reads_frames_cut_anywhere(size: int) -> None:
    calls = [ToolCall("call_1", "f", '{"a": "x\\ny"}'), ToolCall("call_2", "g", "{}")]
    text = "Before <tool_call not ours>\n" + frame(calls[0]) + "mid\n" + frame(calls[1]) + "\nend"
    demux = FrameDemux()
    out: list[str | ToolCall] = []
    for start in range(0, len(text), size):
        out += demux.feed(text[start : start + size])
    out.append(demux.flush())
    assert [o for o in out if isinstance(o, ToolCall)] == calls
    assert "".join(o for o in out if isinstance(o, str)) == split_frames(text)[0]
    assert split_frames(text)[0] == "Before <tool_call not ours>\nmid\n\nend"


def test_an_unfinished_frame_is_text() -> None:
    demux = FrameDemux()
    started = frame(ToolCall("call_1", "f", "{}"))[:-8]
    assert demux.feed("hi" + started) == ["hi"]
    assert demux.flush() == started


def test_the_engine_turns_upstream_tool_call_deltas_into_frames() -> None:
    arguments = '{"city": "Paris", "unit": "celsius"}'
    config = StubConfig(tool_calls=(("get_weather", arguments), ("get_time", "{}")))
    config.tool_preface = "Let me look."
    with stub_server(config) as stub:
        remote = provider()
        version = endpoint_version([stub.url])
        chat = messages_prompt(
            [{"role": "user", "content": "Weather?"}], tools=TOOLS, model="remote@1"
        )
        events = run(remote, generate(remote, version, chat.parts, max_tokens=20))
        (sent,) = stub.completions()
        assert sent.body["tools"] == TOOLS
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    content, calls = split_frames(text)
    assert content == "Let me look."
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_stub0", "get_weather", arguments),
        ("call_stub1", "get_time", "{}"),
    ]
    assert json.loads(calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.completion_tokens == 6


LLAMA_SERVER = {
    "error": {
        "code": 400,
        "message": "request (424 tokens) exceeds the available context size (256 tokens), "
        "try increasing it",
        "type": "exceed_context_size_error",
    }
}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, LLAMA_SERVER),  # what the pinned llama-server answers (checked by hand)
        (500, {"error": {"message": "the request exceeds the available context size"}}),
        (400, {"object": "error", "message": "This model's maximum context length is 8192"}),
        (
            400,
            {
                "message": "The decoder prompt (length 9000) is longer than the maximum model "
                "length of 8192."
            },
        ),
        (
            422,
            {
                "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be "
                "<= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`"
            },
        ),
        (400, {"error": {"message": "too long", "code": "context_length_exceeded"}}),
    ],
)
def test_an_overlong_prompt_is_the_callers_400_and_no_replica_failure(
    status: int, body: Any
) -> None:
    with stub_server(StubConfig(fail_status=status, fail_body=body)) as one, stub_server() as two:
        remote = provider()
        version = endpoint_version([one.url, two.url])

        async def attempt() -> list[dict[str, Any]]:
            with pytest.raises(InvalidInput) as raised:
                await generate(remote, version, "a long prompt")
            assert raised.value.code == "context_length_exceeded"
            assert raised.value.param == "prompt"
            return remote.status()

        (status_now,) = run(remote, attempt())
        assert two.completions() == []  # not failed over: another replica has the same context
    assert [r["failed"] for r in status_now["replicas"]] == [0, 0]
