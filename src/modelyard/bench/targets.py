"""Where bench requests go: a local engine worker, or any OpenAI-compatible server (streaming)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from modelyard.bench.results import RequestResult
from modelyard.engines.base import Engine, Finish, SamplingParams
from modelyard.errors import ModelyardError


class Target(Protocol):
    name: str

    async def request(self, prompt: str, max_tokens: int) -> RequestResult: ...

    async def aclose(self) -> None: ...


class EngineTarget:
    """A synchronous engine (a version's engine worker); each request runs on its own thread.

    The worker batches concurrent requests up to its slots; beyond that they wait, and the
    bench shows the wait as time to first token.
    """

    def __init__(self, name: str, engine: Engine, workers: int) -> None:
        self.name = name
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="bench")

    def _run(self, prompt: str, max_tokens: int, sent: float) -> RequestResult:
        result = RequestResult()
        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0)
        try:
            for event in self.engine.complete(prompt, params):
                now = time.perf_counter() - sent
                if isinstance(event, Finish):
                    result.output_tokens = event.completion_tokens
                    result.prompt_tokens = event.prompt_tokens
                    result.usage_reported = True
                    result.ok = True
                    break
                if event.text:
                    if result.ttft_s is None:
                        result.ttft_s = now
                    result.chunk_times.append(now)
        except ModelyardError as exc:
            result.error = exc.message
        result.end_s = time.perf_counter() - sent
        return result

    async def request(self, prompt: str, max_tokens: int) -> RequestResult:
        import asyncio

        sent = time.perf_counter()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, prompt, max_tokens, sent)

    async def aclose(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.close()


@dataclass(frozen=True)
class HttpOptions:
    base_url: str
    model: str
    key: str | None = None
    endpoint: str = "chat"  # "chat" -> /chat/completions, "completions" -> /completions
    ignore_eos: bool = False
    timeout_s: float = 300.0


def request_body(options: HttpOptions, prompt: str, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": options.model,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if options.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if options.ignore_eos:
        # Honoured by vLLM and llama-server: generate exactly max_tokens.
        body["ignore_eos"] = True
        body["min_tokens"] = max_tokens
    return body


def _chunk_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    first = choices[0]
    delta = first.get("delta")
    if isinstance(delta, dict):
        return str(delta.get("content") or "")
    return str(first.get("text") or "")


def apply_event(result: RequestResult, data: str, now: float) -> bool:
    """Fold one server-sent ``data:`` payload into the result; True at ``[DONE]``."""
    if data.strip() == "[DONE]":
        return True
    chunk = json.loads(data)
    if "error" in chunk:
        error = chunk["error"]
        result.error = str(error.get("message") if isinstance(error, dict) else error)
        return True
    if _chunk_text(chunk):
        if result.ttft_s is None:
            result.ttft_s = now
        result.chunk_times.append(now)
    usage = chunk.get("usage")
    if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
        result.output_tokens = int(usage["completion_tokens"])
        result.prompt_tokens = usage.get("prompt_tokens")
        result.usage_reported = True
    return False


class HttpTarget:
    """An OpenAI-compatible server (modelyard, llama-server, vLLM, LiteLLM...), streamed."""

    def __init__(self, options: HttpOptions, concurrency: int) -> None:
        self.options = options
        self.name = f"{options.model} @ {options.base_url}"
        headers = {"Authorization": f"Bearer {options.key}"} if options.key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(
            base_url=options.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(options.timeout_s, connect=10.0),
            limits=limits,
        )

    async def request(self, prompt: str, max_tokens: int) -> RequestResult:
        path = "/chat/completions" if self.options.endpoint == "chat" else "/completions"
        body = request_body(self.options, prompt, max_tokens)
        result = RequestResult()
        sent = time.perf_counter()
        try:
            async with self._client.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode("utf-8", "replace")
                    result.error = f"HTTP {response.status_code}: {text[:200]}"
                else:
                    await self._read(response, result, sent)
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        result.end_s = time.perf_counter() - sent
        if result.error is None:
            if not result.usage_reported:
                result.output_tokens = len(result.chunk_times)  # no usage: count chunks
            result.ok = True
        return result

    async def _read(self, response: httpx.Response, result: RequestResult, sent: float) -> None:
        finished = False
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            if apply_event(result, line[5:].strip(), time.perf_counter() - sent):
                finished = True
                break
        if not finished and result.error is None:
            result.error = "the stream ended without [DONE]"

    async def aclose(self) -> None:
        await self._client.aclose()
