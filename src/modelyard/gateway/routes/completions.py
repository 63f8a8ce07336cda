"""``POST /v1/completions``: plain prompt completion, streaming or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from modelyard.engines.base import Finish
from modelyard.errors import InvalidInput
from modelyard.gateway.auth import require_key
from modelyard.gateway.generation import collect_choices, serve_model
from modelyard.gateway.pipeline import ChoiceEvent, GenerationCall
from modelyard.gateway.response_cache import cache_headers, cache_note
from modelyard.gateway.responses import completion_logprobs, completion_payload, new_id, now
from modelyard.gateway.routes.common import (
    batch_origin,
    chain,
    check_n,
    gateway_of,
    response_headers,
    sampling,
    start_generation,
)
from modelyard.gateway.schemas import CompletionRequest
from modelyard.gateway.sse import DONE, frame, sse_response
from modelyard.gateway.usage import TokenUsage, choice_usage
from modelyard.governance.keys import Principal

router = APIRouter()


@router.post("/v1/completions")
async def completions(
    body: CompletionRequest, request: Request, principal: Principal = Depends(require_key)
) -> Response:
    gateway = gateway_of(request)
    body.check_prompt_size(max_bytes=gateway.settings.gateway_max_prompt_bytes)
    prompts = body.prompts()
    check_n(gateway, body.n, len(prompts))
    if body.suffix:
        raise InvalidInput("suffix (fill-in-the-middle) is not supported", param="suffix")
    if body.best_of not in (None, 1):
        raise InvalidInput("best_of is not supported", param="best_of")
    served = await serve_model(gateway, body.model, principal)
    version = served.version
    params = sampling(body, logprobs=body.logprobs)
    call = GenerationCall(
        endpoint="completions",
        request_id=request.state.request_id,
        principal=principal,
        served=served,
        prompts=prompts,
        params=params,
        max_tokens=body.max_tokens,
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
    completion_id = new_id("cmpl")
    count = len(prompts) * body.n
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        frames = _stream(events, completion_id, version.ref, body, count, include_usage)
        return sse_response(frames, headers)
    results = await collect_choices(events, count, request)
    choices = []
    usage = TokenUsage()
    for index, result in enumerate(results):
        finish = result.finish or Finish("stop", 0, 0)
        usage += choice_usage(index, body.n, finish)
        prefix = prompts[index // body.n] if body.echo else ""
        logprobs = None
        if body.logprobs is not None:
            logprobs = completion_logprobs(result.logprobs, len(prefix))
        choices.append(
            {
                "index": index,
                "text": prefix + "".join(result.text),
                "logprobs": logprobs,
                "finish_reason": finish.reason,
            }
        )
    payload = completion_payload(
        "text_completion", completion_id, version, choices, usage.to_json()
    )
    return JSONResponse(payload, headers=headers)


async def _stream(
    events: AsyncIterator[ChoiceEvent],
    completion_id: str,
    model: str,
    body: CompletionRequest,
    count: int,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    created = now()
    prompts = body.prompts()

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return frame(
            {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
        )

    if body.echo:
        for index in range(count):
            text = prompts[index // body.n]
            yield chunk([{"index": index, "text": text, "logprobs": None, "finish_reason": None}])
    usage = TokenUsage()
    async for item in events:
        event = item.event
        if isinstance(event, Finish):
            usage += choice_usage(item.index, body.n, event)
            yield chunk(
                [{"index": item.index, "text": "", "logprobs": None, "finish_reason": event.reason}]
            )
            continue
        logprobs = completion_logprobs(event.logprobs) if body.logprobs is not None else None
        yield chunk(
            [{"index": item.index, "text": event.text, "logprobs": logprobs, "finish_reason": None}]
        )
    if include_usage:
        yield chunk([], usage=usage.to_json())
    yield DONE
