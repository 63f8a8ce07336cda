"""``POST /v1/chat/completions``: chat, streaming or not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import Finish, TokenLogprob
from modelyard.engines.chat_templates import ChatPrompt, render_chat
from modelyard.engines.endpoints import is_endpoint
from modelyard.engines.remote_messages import messages_prompt
from modelyard.engines.remote_tools import FrameDemux, ToolCall, split_frames
from modelyard.engines.response_format import schema_for
from modelyard.engines.tool_calls import parse_tool_calls
from modelyard.errors import InvalidInput
from modelyard.gateway.auth import require_key
from modelyard.gateway.generation import collect_choices, serve_model
from modelyard.gateway.pipeline import ChoiceEvent, GenerationCall
from modelyard.gateway.response_cache import cache_headers, cache_note
from modelyard.gateway.responses import chat_logprobs, completion_payload, new_id, now
from modelyard.gateway.routes.common import (
    batch_origin,
    chain,
    check_n,
    gateway_of,
    response_headers,
    sampling,
    start_generation,
)
from modelyard.gateway.schemas import ChatRequest
from modelyard.gateway.sse import DONE, frame, sse_response
from modelyard.gateway.usage import TokenUsage, choice_usage
from modelyard.governance.keys import Principal

router = APIRouter()


class ChatBody(ChatRequest):
    """The chat request; ``parallel_tool_calls`` goes to endpoints that take it."""

    parallel_tool_calls: bool | None = None


def tool_names(body: ChatRequest) -> set[str]:
    names = set()
    for tool in body.tools or []:
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def answer_message(
    text: str, body: ChatBody, tools: list[dict[str, Any]] | None, *, remote: bool
) -> dict[str, Any]:
    """The assistant message of a whole answer, with ``tool_calls`` when it calls tools:
    an endpoint's own calls (frames in the text), or calls a model wrote in its template's
    format."""
    if remote and body.tools:
        content, framed = split_frames(text)
        if framed:
            return {
                "role": "assistant",
                "content": content or None,
                "refusal": None,
                "tool_calls": [c.to_json() for c in framed],
            }
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tools and (parsed := parse_tool_calls(text, tool_names(body))):
        message.update(content=None, tool_calls=[c.to_json() for c in parsed])
    return message


async def _chat_prompt(
    body: ChatBody, version: ModelVersion, tools: list[dict[str, Any]] | None, request: Request
) -> ChatPrompt:
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    if is_endpoint(version):  # the upstream applies its own template: it gets the messages
        return messages_prompt(
            messages,
            tools=body.tools,
            model=version.ref,
            tool_choice=body.tool_choice,
            parallel_tool_calls=body.parallel_tool_calls,
        )
    # a model's own template renders in a child process; this thread only waits for it
    return await asyncio.to_thread(
        render_chat,
        version.metadata,
        messages,
        tools=tools,
        model=version.ref,
        renderer=request.app.state.template_renderer,
    )


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatBody, request: Request, principal: Principal = Depends(require_key)
) -> Response:
    gateway = gateway_of(request)
    body.check_prompt_size(
        max_messages=gateway.settings.gateway_max_messages,
        max_bytes=gateway.settings.gateway_max_prompt_bytes,
    )
    check_n(gateway, body.n)
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidInput("top_logprobs needs logprobs: true", param="top_logprobs")
    served = await serve_model(gateway, body.model, principal)
    version = served.version
    tools = None if body.tool_choice == "none" else body.tools
    remote = is_endpoint(version)
    chat = await _chat_prompt(body, version, tools, request)
    params = sampling(
        body,
        stops=chat.stop,
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        json_schema=schema_for(body.response_format),
    )
    call = GenerationCall(
        endpoint="chat",
        request_id=request.state.request_id,
        principal=principal,
        served=served,
        prompts=(chat.parts,),
        params=params,
        max_tokens=body.token_limit(),
        n=body.n,
        user=body.user,
        client=request.client.host if request.client else None,
        body=body.model_dump(),
        cache=cache_note(request),
        batch=batch_origin(request),
    )
    first, stream = await start_generation(gateway, call)
    events = chain(first, stream)
    headers = {**response_headers(request, served.headers), **cache_headers(call.cache)}
    completion_id = new_id("chatcmpl")
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        framed = remote and bool(body.tools)
        frames = _stream(events, completion_id, version.ref, body, include_usage, framed)
        return sse_response(frames, headers)
    results = await collect_choices(events, body.n, request)
    choices = []
    usage = TokenUsage()
    for index, result in enumerate(results):
        finish = result.finish or Finish("stop", 0, 0)
        usage += choice_usage(index, body.n, finish)
        message = answer_message("".join(result.text), body, tools, remote=remote)
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": chat_logprobs(result.logprobs) if body.logprobs else None,
                "finish_reason": "tool_calls" if "tool_calls" in message else finish.reason,
            }
        )
    payload = completion_payload(
        "chat.completion", completion_id, version, choices, usage.to_json()
    )
    return JSONResponse(payload, headers=headers)


class _ToolFrames:
    """One choice of an endpoint's streamed answer to a request with tools: tool-call
    frames (``engines/remote_tools.py``) become ``tool_calls`` deltas, the rest content;
    log-probabilities go with the next content delta."""

    def __init__(self) -> None:
        self.demux = FrameDemux()
        self.calls = 0
        self.logprobs: list[TokenLogprob] = []

    def deltas(
        self, text: str, logprobs: Sequence[TokenLogprob], *, final: bool = False
    ) -> list[tuple[dict[str, Any], Sequence[TokenLogprob] | None]]:
        self.logprobs.extend(logprobs)
        pieces = self.demux.feed(text)
        if final:
            pieces.append(self.demux.flush())
        out: list[tuple[dict[str, Any], Sequence[TokenLogprob] | None]] = []
        for piece in pieces:
            if isinstance(piece, ToolCall):
                out.append(({"tool_calls": [piece.to_json(self.calls)]}, None))
                self.calls += 1
            elif piece:
                out.append(({"content": piece}, self.logprobs))
                self.logprobs = []
        if final and self.logprobs:
            out.append(({"content": ""}, self.logprobs))
            self.logprobs = []
        return out


async def _stream(
    events: AsyncIterator[ChoiceEvent],
    completion_id: str,
    model: str,
    body: ChatRequest,
    include_usage: bool,
    tool_frames: bool = False,
) -> AsyncIterator[bytes]:
    created = now()

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return frame(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
        )

    def piece(
        index: int,
        delta: dict[str, Any],
        logprobs: Sequence[TokenLogprob] | None,
        reason: str | None = None,
    ) -> bytes:
        lp = chat_logprobs(logprobs) if body.logprobs and logprobs is not None else None
        return chunk([{"index": index, "delta": delta, "logprobs": lp, "finish_reason": reason}])

    for index in range(body.n):
        yield piece(index, {"role": "assistant", "content": ""}, None)
    framed = [_ToolFrames() for _ in range(body.n)] if tool_frames else None
    usage = TokenUsage()
    async for item in events:
        event = item.event
        if isinstance(event, Finish):
            reason: str = event.reason
            if framed is not None:
                state = framed[item.index]
                for delta, logprobs in state.deltas("", (), final=True):
                    yield piece(item.index, delta, logprobs)
                reason = "tool_calls" if state.calls else reason
            usage += choice_usage(item.index, body.n, event)
            yield piece(item.index, {}, None, reason)
            continue
        if framed is None:
            yield piece(item.index, {"content": event.text}, event.logprobs)
            continue
        for delta, logprobs in framed[item.index].deltas(event.text, event.logprobs):
            yield piece(item.index, delta, logprobs)
    if include_usage:
        yield chunk([], usage=usage.to_json())
    yield DONE
