"""The one async HTTP engine client: a prompt and sampling parameters in, events out.

It speaks llama.cpp's native server routes (``/completion``, ``/tokenize``), which take the
prompt as a mix of text and token ids and implement logprobs, logit bias, seed, stop strings
and JSON-schema constrained decoding inside the engine: no Python runs per token or over the
vocabulary here. Engine workers (local ``llama-server`` processes, over a Unix socket) use it
today; a remote llama-server is the same client over TCP.

Chat prompts arrive as :class:`~modelyard.engines.base.PromptPart` s. Template text is sent as
text (the engine parses its control tokens); user text is first turned into token ids with
``parse_special: false``, so ``<start_of_turn>`` typed by a user stays ordinary text. All of a
prompt's user parts are tokenized in one ``/tokenize`` request (a mixed content list, each
string tokenized on its own, separated by a ``-1`` that no token has), so a chat of many
messages costs one round trip, not one per message.

Cancellation is closing the stream: the engine stops that generation and frees its slot.
Token counts come from the engine (``tokens_evaluated`` / ``tokens_predicted``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from modelyard.engines.base import (
    Event,
    Finish,
    FinishReason,
    Prompt,
    PromptPart,
    SamplingParams,
    TextDelta,
    TokenLogprob,
    TopLogprob,
)
from modelyard.errors import EngineFault, InvalidInput, Unavailable

_CONTEXT_ERRORS = ("exceed_context_size_error", "exceeds the available context size")
_SEPARATOR = -1
"""Put between the strings of a ``/tokenize`` content list; no token has a negative id."""


class EngineStopped(Unavailable):
    """The engine went away mid-request (a worker crashed or was stopped)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="worker_stopped", retry_after_s=1)


@dataclass(frozen=True)
class EngineEndpoint:
    """Where an engine listens and the secret it wants."""

    base_url: str
    api_key: str | None = None
    uds: str | None = None
    """A Unix socket path (engine workers); None for TCP."""


def _request_error(
    status: int, body: bytes, model: str, prompt_param: str = "messages"
) -> Exception:
    """An engine's error answer → our error (its 4xx are the caller's fault)."""
    try:
        error = json.loads(body).get("error", {})
        message = str(error.get("message") or body[:500].decode("utf-8", "replace"))
        kind = str(error.get("type") or "")
    except (ValueError, AttributeError):
        message, kind = body[:500].decode("utf-8", "replace"), ""
    if any(marker in message or marker == kind for marker in _CONTEXT_ERRORS):
        return InvalidInput(
            f"the prompt does not fit {model}'s context: {message}",
            param=prompt_param,
            code="context_length_exceeded",
        )
    if status == 503:
        return Unavailable(f"{model} is still loading", code="model_loading", retry_after_s=1)
    if 400 <= status < 500:
        lowered = message.lower()
        param = "response_format" if ("schema" in lowered or "grammar" in lowered) else None
        return InvalidInput(f"{model} refused the request: {message}", param=param)
    return EngineFault(f"{model}'s engine failed (HTTP {status}): {message}")


_JSON = {"Content-Type": "application/json"}


def _encode(body: dict[str, Any]) -> bytes:
    """The request body as UTF-8 JSON; text that is not valid Unicode is the caller's error."""
    try:
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            "the request holds text that is not valid Unicode (a lone UTF-16 surrogate such "
            f"as \\u{ord(exc.object[exc.start]):04x}); send characters as surrogate pairs",
            code="invalid_unicode",
        ) from exc


def sampling_body(params: SamplingParams) -> dict[str, Any]:
    """SamplingParams → llama.cpp's ``/completion`` fields (OpenAI semantics: no min-p)."""
    body: dict[str, Any] = {
        "n_predict": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "min_p": 0.0,
        "stop": list(params.stop),
        "cache_prompt": True,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.logprobs is not None:
        body["n_probs"] = max(1, params.logprobs)
    if params.logit_bias:
        body["logit_bias"] = [[token, bias] for token, bias in params.logit_bias]
    if params.json_schema is not None:
        body["json_schema"] = params.json_schema
    return body


def _logprobs(entries: list[Mapping[str, Any]], top_n: int) -> tuple[TokenLogprob, ...]:
    out = []
    for entry in entries:
        top = tuple(
            TopLogprob(str(t.get("token", "")), float(t["logprob"]), bytes(t.get("bytes") or b""))
            for t in (entry.get("top_logprobs") or [])[:top_n]
        )
        out.append(
            TokenLogprob(
                token=str(entry.get("token", "")),
                logprob=float(entry["logprob"]),
                token_bytes=bytes(entry.get("bytes") or b""),
                top=top,
            )
        )
    return tuple(out)


class HTTPEngine:
    """An async client for one engine (one model), shared by all of that model's requests."""

    def __init__(self, endpoint: EngineEndpoint, *, model: str, max_connections: int) -> None:
        self.endpoint = endpoint
        self.model = model
        transport = httpx.AsyncHTTPTransport(
            uds=endpoint.uds,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=endpoint.base_url,
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(connect=5.0, read=None, write=30.0, pool=None),
        )

    async def health(self) -> bool:
        try:
            response = await self._client.get("/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Token ids of ``text`` (no BOS); ``special=False`` never yields control tokens."""
        response = await self._post(
            "/tokenize", {"content": text, "add_special": False, "parse_special": special}
        )
        return [int(t) for t in response.get("tokens", [])]

    async def tokenize_many(self, texts: Sequence[str], *, special: bool) -> list[list[int]]:
        """Token ids of each text (no BOS), in one request; see the module docstring."""
        if not texts:
            return []
        content: list[str | int] = []
        for index, text in enumerate(texts):
            if index:
                content.append(_SEPARATOR)
            content.append(text)
        response = await self._post(
            "/tokenize", {"content": content, "add_special": False, "parse_special": special}
        )
        pieces: list[list[int]] = [[]]
        for token in response.get("tokens", []):
            if int(token) == _SEPARATOR:
                pieces.append([])
            else:
                pieces[-1].append(int(token))
        if len(pieces) != len(texts):
            raise EngineFault(
                f"the engine for {self.model} tokenized {len(texts)} texts into "
                f"{len(pieces)} pieces; it does not take mixed /tokenize content"
            )
        return pieces

    async def count_tokens(self, prompt: Prompt) -> int:
        return len(await self._prompt_tokens(prompt, with_bos=True))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        content = _encode(body)
        try:
            response = await self._client.post(path, content=content, headers=_JSON)
        except httpx.HTTPError as exc:
            raise EngineStopped(f"the engine for {self.model} is not answering ({exc})") from exc
        if response.status_code != 200:
            raise _request_error(response.status_code, response.content, self.model)
        result: dict[str, Any] = response.json()
        return result

    async def _prompt_tokens(self, prompt: Prompt, *, with_bos: bool) -> list[int]:
        if isinstance(prompt, str):
            prompt = (PromptPart(prompt, True),)
        special, user = await asyncio.gather(
            self.tokenize_many([p.text for p in prompt if p.special], special=True),
            self.tokenize_many([p.text for p in prompt if not p.special], special=False),
        )
        specials, users = iter(special), iter(user)
        tokens = [t for part in prompt for t in next(specials if part.special else users)]
        if with_bos:
            bos = await self._post("/tokenize", {"content": "", "add_special": True})
            tokens = [int(t) for t in bos.get("tokens", [])] + tokens
        return tokens

    async def engine_prompt(self, prompt: Prompt) -> str | list[str | int]:
        """The ``prompt`` field for ``/completion``: text, or text mixed with user token ids."""
        if isinstance(prompt, str):
            return prompt
        if all(part.special for part in prompt):
            return "".join(part.text for part in prompt)
        ids = iter(
            await self.tokenize_many([p.text for p in prompt if not p.special], special=False)
        )
        mixed: list[str | int] = []
        if not prompt[0].special:
            mixed.append("")  # a leading string makes the engine add the model's BOS token
        for part in prompt:
            if part.special:
                mixed.append(part.text)
            else:
                mixed.extend(next(ids))
        return mixed

    async def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Event]:
        """TextDelta events, then one Finish. Closing the iterator cancels the generation."""
        body = sampling_body(params)
        body["prompt"] = await self.engine_prompt(prompt)
        body["stream"] = True
        top_n = params.logprobs or 0
        content = _encode(body)
        try:
            async with self._client.stream(
                "POST", "/completion", content=content, headers=_JSON
            ) as response:
                if response.status_code != 200:
                    param = "prompt" if isinstance(prompt, str) else "messages"
                    raise _request_error(
                        response.status_code, await response.aread(), self.model, param
                    )
                async for event in self._events(response, top_n):
                    yield event
                    if isinstance(event, Finish):
                        return
        except httpx.HTTPError as exc:
            raise EngineStopped(
                f"the engine for {self.model} stopped during the generation ({exc})"
            ) from exc
        raise EngineStopped(f"the engine for {self.model} ended the stream without finishing")

    async def _events(self, response: httpx.Response, top_n: int) -> AsyncIterator[Event]:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
            elif line.startswith("error: "):
                error = json.loads(line[7:])
                raise _request_error(int(error.get("code") or 500), line[7:].encode(), self.model)
            else:
                continue
            if "error" in data:
                raise _request_error(500, json.dumps(data).encode(), self.model)
            text = data.get("content") or ""
            probs = data.get("completion_probabilities")
            logprobs = _logprobs(probs, top_n) if probs else ()
            if text or logprobs:
                yield TextDelta(text, logprobs)
            if data.get("stop"):
                reason: FinishReason = "length" if data.get("stop_type") == "limit" else "stop"
                yield Finish(
                    reason,
                    int(data.get("tokens_evaluated") or 0),
                    int(data.get("tokens_predicted") or 0),
                )

    async def aclose(self) -> None:
        await self._client.aclose()
