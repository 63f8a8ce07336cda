"""A fast OpenAI-compatible upstream for gateway benchmarks: answers at once, so that what
is measured is the gateway (auth, governance, audit), not an engine.

One asyncio process, HTTP/1.1 keep-alive, no framework. ``GET /v1/models`` and
``POST /v1/chat/completions`` (a fixed short answer, as JSON or as server-sent events)::

    python bench/stub_upstream.py --port 0      # prints "listening on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

MODEL = "stub-model"
ANSWER = "The quarterly numbers were on target."


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def _completion(request: dict[str, object]) -> bytes:
    created = int(time.time())
    usage = {"prompt_tokens": 24, "completion_tokens": 8, "total_tokens": 32}
    if request.get("stream"):
        chunk = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": ANSWER}, "finish_reason": None}],
        }
        last = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        tail = {**chunk, "choices": [], "usage": usage}
        events = "".join(f"data: {json.dumps(e)}\n\n" for e in (chunk, last, tail))
        return _response("200 OK", (events + "data: [DONE]\n\n").encode(), "text/event-stream")
    body = {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }
    return _response("200 OK", json.dumps(body).encode())


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if method == "GET" and path.startswith("/v1/models"):
                models = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
                writer.write(_response("200 OK", json.dumps(models).encode()))
            elif method == "POST" and path.startswith("/v1/chat/completions"):
                writer.write(_completion(json.loads(body or b"{}")))
            else:
                writer.write(_response("404 Not Found", b'{"error":{"message":"no route"}}'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client closed its connection: the normal end of a keep-alive session
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
