"""``POST /v1/chat/completions``: chat, streaming or not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from modelyard.engines.base import Finish
from modelyard.engines.chat_templates import render_chat
from modelyard.engines.response_format import schema_for
from modelyard.engines.tool_calls import parse_tool_calls
from modelyard.errors import InvalidInput
from modelyard.gateway.auth import require_key
from modelyard.gateway.generation import collect_choices, serve_model
from modelyard.gateway.pipeline import ChoiceEvent, GenerationCall
from modelyard.gateway.responses import chat_logprobs, completion_payload, new_id, now
from modelyard.gateway.routes.common import (
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


def tool_names(body: ChatRequest) -> set[str]:
    names = set()
    for tool in body.tools or []:
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatRequest, request: Request, principal: Principal = Depends(require_key)
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
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    tools = None if body.tool_choice == "none" else body.tools
    # a model's own template renders in a child process; this thread only waits for it
    chat = await asyncio.to_thread(
        render_chat,
        version.metadata,
        messages,
        tools=tools,
        model=version.ref,
        renderer=request.app.state.template_renderer,
    )
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
    )
    first, stream = await start_generation(gateway, call)
    events = chain(first, stream)
    headers = response_headers(request, served.headers)
    completion_id = new_id("chatcmpl")
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        frames = _stream(events, completion_id, version.ref, body, include_usage)
        return sse_response(frames, headers)
    results = await collect_choices(events, body.n, request)
    choices = []
    usage = TokenUsage()
    for index, result in enumerate(results):
        finish = result.finish or Finish("stop", 0, 0)
        usage += choice_usage(index, body.n, finish)
        text = "".join(result.text)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        reason: str = finish.reason
        if calls := parse_tool_calls(text, tool_names(body)) if tools else []:
            message.update(content=None, tool_calls=[c.to_json() for c in calls])
            reason = "tool_calls"
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": chat_logprobs(result.logprobs) if body.logprobs else None,
                "finish_reason": reason,
            }
        )
    payload = completion_payload(
        "chat.completion", completion_id, version, choices, usage.to_json()
    )
    return JSONResponse(payload, headers=headers)


async def _stream(
    events: AsyncIterator[ChoiceEvent],
    completion_id: str,
    model: str,
    body: ChatRequest,
    include_usage: bool,
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

    for index in range(body.n):
        yield chunk(
            [
                {
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        )
    usage = TokenUsage()
    async for item in events:
        event = item.event
        if isinstance(event, Finish):
            usage += choice_usage(item.index, body.n, event)
            yield chunk(
                [
                    {
                        "index": item.index,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": event.reason,
                    }
                ]
            )
            continue
        logprobs = chat_logprobs(event.logprobs) if body.logprobs else None
        yield chunk(
            [
                {
                    "index": item.index,
                    "delta": {"content": event.text},
                    "logprobs": logprobs,
                    "finish_reason": None,
                }
            ]
        )
    if include_usage:
        yield chunk([], usage=usage.to_json())
    yield DONE
