"""A small OpenAI-compatible upstream for the remote-engine tests: a real HTTP server
(stdlib, threads) on 127.0.0.1, port 0 (it binds its own), that can be told to misbehave.

It serves ``GET /v1/models`` (with llama-server-style ``meta``), optionally ``GET /props``
and ``GET /api/tags``, and ``POST /v1/chat/completions`` / ``/v1/completions`` streamed as
server-sent events in HTTP/1.1 chunked encoding (so dying mid-stream is a broken body, as a
killed engine's is). What it received (bodies, headers) is kept for assertions.

Failure modes (:class:`StubConfig`): answer ``fail_status`` with ``fail_body`` before any
byte, ``die_after`` N chunks (connection cut), ``delay_s`` before the first byte,
``echo_headers`` (an error body that repeats the request's headers, Authorization included),
``redirect_to`` (a 307), no ``usage`` chunk. With ``tool_calls`` set, a chat request that
offers tools is answered with those calls, streamed as OpenAI streams them (id and name
first, then the arguments in ``tool_fragment``-character pieces, ``finish_reason:
"tool_calls"``), after ``tool_preface`` content if any. :func:`refusing_port` is a port that
refuses connections (bound, never listening) for as long as it is held.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StubConfig:
    models: tuple[str, ...] = ("stub-model",)
    reply: str = "Hello from the stub upstream"
    key: str | None = None
    """When set, every route wants ``Authorization: Bearer KEY`` (401 otherwise)."""
    meta: dict[str, Any] | None = field(
        default_factory=lambda: {"n_params": 1000, "size": 4096, "n_vocab": 32, "n_ctx_train": 512}
    )
    props: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    fail_status: int | None = None
    fail_body: Any = field(
        default_factory=lambda: {"error": {"message": "the stub failed", "type": "server_error"}}
    )
    fail_models: bool = False
    """Also fail ``GET /v1/models`` (the health check) with ``fail_status``."""
    die_after: int | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    echo_headers: bool = False
    redirect_to: str | None = None
    usage: bool = True
    tool_calls: tuple[tuple[str, str], ...] = ()
    """``(name, arguments JSON)`` of the calls to answer a request with tools with."""
    tool_fragment: int = 5
    tool_preface: str = ""


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class StubServer:
    def __init__(self, config: StubConfig | None = None) -> None:
        self.config = config or StubConfig()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def completions(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.endswith("completions")]

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def stub_server(config: StubConfig | None = None) -> Iterator[StubServer]:
    server = StubServer(config).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs (bound, not listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send_json(self, status: int, payload: Any) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            key = stub.config.key
            if key is None or self.headers.get("Authorization") == f"Bearer {key}":
                return True
            self._send_json(401, {"error": {"message": "invalid api key", "type": "auth"}})
            return False

        def do_GET(self) -> None:
            config = stub.config
            if not self._authorised():
                return
            if self.path == "/v1/models":
                if config.fail_models and config.fail_status:
                    self._send_json(config.fail_status, config.fail_body)
                    return
                data = []
                for name in config.models:
                    entry: dict[str, Any] = {"id": name, "object": "model", "owned_by": "stub"}
                    if config.meta is not None:
                        entry["meta"] = config.meta
                    data.append(entry)
                self._send_json(200, {"object": "list", "data": data})
            elif self.path == "/props" and config.props is not None:
                self._send_json(200, config.props)
            elif self.path == "/api/tags" and config.tags is not None:
                self._send_json(200, config.tags)
            else:
                self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})

        def do_POST(self) -> None:
            config = stub.config
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            with stub.lock:
                stub.received.append(Received(self.path, body, dict(self.headers.items())))
            if not self._authorised():
                return
            if config.redirect_to is not None:
                self.send_response(307)
                self.send_header("Location", config.redirect_to + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if config.delay_s:
                time.sleep(config.delay_s)
            if config.fail_status is not None:
                payload = config.fail_body
                if config.echo_headers:
                    payload = {"error": {"message": f"bad request; headers: {dict(self.headers)}"}}
                self._send_json(config.fail_status, payload)
                return
            if self.path not in ("/v1/chat/completions", "/v1/completions"):
                self._send_json(404, {"error": {"message": "no such route"}})
                return
            try:
                if config.tool_calls and body.get("tools"):
                    self._tool_stream()
                else:
                    self._stream(body, chat=self.path == "/v1/chat/completions")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away: what the test wanted

        def _chunk(self, payload: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def _event(self, payload: dict[str, Any]) -> None:
            self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

        def _delta(self, delta: dict[str, Any], reason: str | None = None) -> None:
            self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": reason}]})

        def _tool_stream(self) -> None:
            config = stub.config
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._delta({"role": "assistant", "content": None})
            if config.tool_preface:
                self._delta({"content": config.tool_preface})
            for index, (name, arguments) in enumerate(config.tool_calls):
                function = {"name": name, "arguments": ""}
                call = {"index": index, "id": f"call_stub{index}", "type": "function"}
                self._delta({"tool_calls": [{**call, "function": function}]})
                step = config.tool_fragment
                for start in range(0, len(arguments), step):
                    piece = {"arguments": arguments[start : start + step]}
                    self._delta({"tool_calls": [{"index": index, "function": piece}]})
            self._delta({}, "tool_calls")
            self._event({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6}})
            self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _stream(self, body: dict[str, Any], *, chat: bool) -> None:
            config = stub.config
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            words = config.reply.split(" ")
            limit = body.get("max_tokens")
            if isinstance(limit, int):
                words = words[:limit]
            for index, word in enumerate(words):
                if config.die_after is not None and index >= config.die_after:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                text = word if index == 0 else " " + word
                choice = (
                    {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
                )
                self._chunk(
                    b"data: "
                    + json.dumps({"choices": [{**choice, "finish_reason": None}]}).encode()
                    + b"\n\n"
                )
                if config.chunk_delay_s:
                    time.sleep(config.chunk_delay_s)
            full = len(words) == len(config.reply.split(" "))
            last = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
            done = {"choices": [{**last, "finish_reason": "stop" if full else "length"}]}
            self._chunk(b"data: " + json.dumps(done).encode() + b"\n\n")
            if config.usage and (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "prompt_tokens": 7,
                    "completion_tokens": len(words),
                    "total_tokens": 7 + len(words),
                }
                self._chunk(
                    b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
                )
            self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
