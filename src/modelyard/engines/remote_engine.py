"""One OpenAI-compatible upstream (vLLM, llama-server, Ollama, TGI, SGLang): request out,
events in.

A messages prompt (:mod:`modelyard.engines.remote_messages`) goes to
``/v1/chat/completions`` as messages; any other prompt to ``/v1/completions`` as text. The
answer is always streamed (``stream: true`` with ``stream_options.include_usage``) and its
server-sent events become :class:`~modelyard.engines.base.TextDelta` events and one
:class:`~modelyard.engines.base.Finish` with the upstream's token counts (estimated when it
reports none).

Errors are sorted for the replica logic: :class:`ReplicaFailed` means nothing reached the
caller and another replica may take the request (connect errors, 5xx, a stream that ended
before its first event); anything else is final. Upstream messages are passed on only after
:func:`scrub` removed the API key and any ``Authorization`` value an upstream echoed.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from modelyard.engines.base import (
    Event,
    Finish,
    FinishReason,
    Prompt,
    SamplingParams,
    TextDelta,
    TokenLogprob,
    TopLogprob,
    is_messages,
    prompt_text,
)
from modelyard.engines.remote_messages import prompt_messages, prompt_tools
from modelyard.engines.remote_tools import ToolCallDeltas
from modelyard.engines.url_policy import UrlRefused
from modelyard.errors import (
    EngineFault,
    InvalidInput,
    ModelyardError,
    RateLimited,
    Unavailable,
)

_JSON = {"Content-Type": "application/json", "Accept": "text/event-stream"}
_CONTEXT = re.compile(
    r"context.length|maximum context|context size|context window|maximum model length"
    r"|max_model_len|exceed_context_size|inputs\W+tokens \+ \W*max_new_tokens"
    r"|inputs\W+must have less than \d+ tokens",
    re.IGNORECASE,
)
"""How upstreams say a prompt does not fit (vLLM, SGLang, llama-server, TGI, OpenAI), in the
error's message, type or code."""
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|basic)(\s+|%20)[A-Za-z0-9._~+/=:-]+")
_AUTH_HEADER = re.compile(
    r"(?i)(authorization|api[-_]?key|x-api-key)([\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:bearer|basic|token)\s+)?[^\"',}\s]+"
)
_MESSAGE_LIMIT = 300


class ReplicaFailed(Exception):
    """The replica failed before anything reached the caller: another one may try."""

    def __init__(self, error: ModelyardError) -> None:
        super().__init__(error.message)
        self.error = error


class StreamLost(Unavailable):
    """The upstream went away in the middle of an answer (the caller has part of it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="upstream_stopped", retry_after_s=1)


def scrub(text: str, secret: str | None) -> str:
    """``text`` without the API key nor any credential-looking header value."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    return _AUTH_VALUE.sub(lambda m: f"{m.group(1)} [redacted]", text)


def request_body(prompt: Prompt, params: SamplingParams, model: str) -> tuple[str, dict[str, Any]]:
    """``(path, body)`` of the upstream request for ``prompt`` (OpenAI semantics)."""
    body: dict[str, Any] = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.max_tokens >= 0:
        body["max_tokens"] = params.max_tokens
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if params.logit_bias:
        body["logit_bias"] = {str(token): bias for token, bias in params.logit_bias}
    if params.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": params.json_schema},
        }
    if is_messages(prompt):
        body["messages"] = prompt_messages(prompt)
        body.update(prompt_tools(prompt))
        if params.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = params.logprobs
        return "/v1/chat/completions", body
    body["prompt"] = prompt_text(prompt)
    if params.logprobs is not None:
        body["logprobs"] = params.logprobs
    return "/v1/completions", body


def encode_body(body: dict[str, Any]) -> bytes:
    """The request as UTF-8 JSON; text that is not valid Unicode is the caller's error."""
    try:
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            "the request holds text that is not valid Unicode (a lone UTF-16 surrogate); "
            "send characters as surrogate pairs",
            code="invalid_unicode",
        ) from exc


def _message_of(body: bytes, secret: str | None) -> tuple[str, str]:
    """``(message, kind)``: the error's message (scrubbed, cut) and its type and code."""
    text = body[:4000].decode("utf-8", "replace")
    kind = ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        error = data.get("error", data)
        if isinstance(error, Mapping):
            text = str(error.get("message") or error.get("detail") or error)
            kind = f"{error.get('type') or ''} {error.get('code') or ''}"
        elif isinstance(error, str):
            text = error
        elif "detail" in data:
            text = str(data["detail"])
    return scrub(text, secret)[:_MESSAGE_LIMIT].strip() or "no message", kind


def error_for(
    status: int,
    body: bytes,
    *,
    model: str,
    secret: str | None,
    headers: Mapping[str, str],
    param: str = "messages",
) -> Exception:
    """An upstream's error answer as our error; ReplicaFailed for what another may retry.

    A prompt that does not fit is the caller's 400 ``context_length_exceeded`` whatever the
    status (an older llama-server answers it with a 500), so it never opens a circuit."""
    message, kind = _message_of(body, secret)
    if 400 <= status < 600 and status != 429 and _CONTEXT.search(f"{message} {kind}"):
        return InvalidInput(
            f"the prompt does not fit {model}'s context: {message}",
            param=param,
            code="context_length_exceeded",
        )
    if 300 <= status < 400:
        return EngineFault(
            f"the upstream of {model} answered with a redirect (HTTP {status}); "
            "redirects are not followed: register the URL it should be called at"
        )
    if status in (401, 403):
        return EngineFault(
            f"the upstream of {model} refused modelyard's credentials (HTTP {status}): "
            f"{message}; check the endpoint's API key"
        )
    if status == 429:
        retry = headers.get("retry-after", "")
        return RateLimited(
            f"the upstream of {model} is rate limiting: {message}",
            retry_after_s=float(retry) if retry.isdigit() else 1.0,
        )
    if 400 <= status < 500:
        return InvalidInput(f"{model} refused the request: {message}")
    return ReplicaFailed(
        Unavailable(
            f"the upstream of {model} failed (HTTP {status}): {message}",
            code="upstream_error",
            retry_after_s=1,
        )
    )


def _bytes_of(value: Any) -> bytes:
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value)
    return b""


def chat_logprobs(data: Any) -> tuple[TokenLogprob, ...]:
    entries = data.get("content") if isinstance(data, Mapping) else None
    out = []
    for entry in entries or []:
        top = tuple(
            TopLogprob(
                str(t.get("token", "")), float(t.get("logprob", 0.0)), _bytes_of(t.get("bytes"))
            )
            for t in entry.get("top_logprobs") or []
        )
        out.append(
            TokenLogprob(
                str(entry.get("token", "")),
                float(entry.get("logprob", 0.0)),
                _bytes_of(entry.get("bytes")),
                top,
            )
        )
    return tuple(out)


def completion_logprobs(data: Any) -> tuple[TokenLogprob, ...]:
    if not isinstance(data, Mapping):
        return ()
    tokens = data.get("tokens") or []
    values = data.get("token_logprobs") or []
    tops = data.get("top_logprobs") or []
    out = []
    for index, token in enumerate(tokens):
        value = values[index] if index < len(values) and values[index] is not None else 0.0
        top_map = tops[index] if index < len(tops) and isinstance(tops[index], Mapping) else {}
        top = tuple(TopLogprob(str(t), float(lp), str(t).encode()) for t, lp in top_map.items())
        out.append(TokenLogprob(str(token), float(value), str(token).encode(), top))
    return tuple(out)


def _reason(value: Any) -> FinishReason:
    return "length" if value == "length" else "stop"


def _delta(choice: Mapping[str, Any], chat: bool, tools: ToolCallDeltas) -> TextDelta | None:
    """A choice's text (and log-probabilities) as an event; its tool-call deltas collected."""
    if chat:
        delta = choice.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        tools.add(delta.get("tool_calls"))
        text = str(delta.get("content") or "")
        logprobs = chat_logprobs(choice.get("logprobs"))
    else:
        text = str(choice.get("text") or "")
        logprobs = completion_logprobs(choice.get("logprobs"))
    return TextDelta(text, logprobs) if text or logprobs else None


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for an upstream that reports no usage."""
    return len(text) // 4 + 1


class UpstreamCall:
    """One request to one replica, streamed: iterate :meth:`events`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        *,
        model: str,
        served_model: str,
        secret: str | None,
    ) -> None:
        self._client = client
        self._base = base_url
        self._model = model
        self._served = served_model
        self._secret = secret
        self.started = False
        """Whether an event has reached the caller (after that, nothing is retried)."""

    async def events(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Event]:
        path, body = request_body(prompt, params, self._served)
        content = encode_body(body)
        try:
            async with self._client.stream(
                "POST", self._base + path, content=content, headers=_JSON
            ) as response:
                chat = path.endswith("chat/completions")
                if response.status_code != 200:
                    raise error_for(
                        response.status_code,
                        await response.aread(),
                        model=self._model,
                        secret=self._secret,
                        headers=response.headers,
                        param="messages" if chat else "prompt",
                    )
                async for event in self._parse(response, chat, prompt):
                    self.started = True
                    yield event
        except UrlRefused as exc:
            raise ReplicaFailed(
                Unavailable(f"{self._model}: {exc.message}", code="model_unavailable")
            ) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ReplicaFailed(self._down(f"could not connect: {type(exc).__name__}")) from exc
        except httpx.TimeoutException as exc:
            raise Unavailable(
                f"the upstream of {self._model} timed out ({type(exc).__name__})",
                code="upstream_timeout",
                retry_after_s=1,
            ) from exc
        except httpx.HTTPError as exc:
            lost = f"the connection was lost ({type(exc).__name__})"
            if not self.started:
                raise ReplicaFailed(self._down(lost)) from exc
            raise StreamLost(f"the upstream of {self._model} stopped mid-answer: {lost}") from exc

    def _down(self, why: str) -> Unavailable:
        return Unavailable(
            f"the upstream of {self._model} is not answering: {why}",
            code="model_unavailable",
            retry_after_s=1,
        )

    async def _parse(
        self, response: httpx.Response, chat: bool, prompt: Prompt
    ) -> AsyncIterator[Event]:
        reason: FinishReason | None = None
        usage: Mapping[str, Any] = {}
        produced = 0
        done = False
        tools = ToolCallDeltas()  # written out as text when the answer finishes
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            chunk = self._chunk(data)
            if isinstance(chunk.get("usage"), Mapping):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, Mapping):
                    continue
                if (delta := _delta(choice, chat, tools)) is not None:
                    produced += 1
                    yield delta
                if choice.get("finish_reason"):
                    reason = _reason(choice["finish_reason"])
                    if frames := tools.frames():
                        produced += 1
                        yield TextDelta(frames)
        if reason is None and not done:
            message = f"the upstream of {self._model} ended its answer without finishing"
            if not self.started:
                raise ReplicaFailed(self._down("its answer ended before it began"))
            raise StreamLost(message)
        if frames := tools.frames():  # calls the upstream never gave a finish_reason for
            yield TextDelta(frames)
        yield Finish(
            reason or "stop",
            int(usage.get("prompt_tokens") or estimate_tokens(prompt_text(prompt))),
            int(usage.get("completion_tokens") or produced),
        )

    def _chunk(self, data: str) -> Mapping[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise EngineFault(f"the upstream of {self._model} sent an unreadable event") from exc
        if not isinstance(chunk, Mapping):
            raise EngineFault(f"the upstream of {self._model} sent an unreadable event")
        if "error" in chunk:
            error = chunk["error"]
            status = error.get("code") if isinstance(error, Mapping) else None
            status = status if isinstance(status, int) and 400 <= status < 600 else 500
            raised = error_for(
                status, data.encode(), model=self._model, secret=self._secret, headers={}
            )
            if isinstance(raised, ReplicaFailed):
                raised = raised.error if self.started else raised
            raise raised
        return chunk
