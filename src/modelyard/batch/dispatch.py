"""One batch line through the gateway's own app, in process, as its key's request.

The line becomes an ASGI ``http`` request to the line's route, with the key's principal and
a :class:`~modelyard.gateway.pipeline.BatchOrigin` already in the scope's state (which only
the server itself can set: a client's request never carries either). The request then takes
the path every request takes (size limits, the route's validation, scopes, PII, limits and
budgets, the response cache, admission, the engine, the audit record) and its answer, status
and ``X-Request-Id`` are what the output file records.

Setting ``stop`` tells the route the client has gone: the generation is stopped as a client
disconnect would stop it (the batch runner preempts a line this way).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message

from modelyard.gateway.pipeline import BatchOrigin
from modelyard.governance.keys import Principal


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")

    def json_text(self) -> str:
        """The body as compact JSON text (a non-JSON body is wrapped as an error)."""
        try:
            value: Any = json.loads(self.body)
        except ValueError:
            value = {
                "error": {
                    "message": self.body.decode("utf-8", "replace")[:1000],
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def dispatch(
    app: ASGIApp,
    *,
    url: str,
    body: bytes,
    principal: Principal,
    origin: BatchOrigin,
    stop: asyncio.Event,
) -> Answer:
    """Send one request through ``app`` and collect its whole answer."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("batch", 0),
        "server": ("modelyard-batch", 0),
        "state": {"principal": principal, "batch": origin},
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await stop.wait()
        return {"type": "http.disconnect"}

    status = 500
    headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for key, value in message.get("headers", []):
                headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return Answer(status, headers, b"".join(chunks))
