"""A minimal real OpenAI-compatible streaming server (stdlib HTTP on a free loopback port).

It speaks just enough of ``/v1/chat/completions`` and ``/v1/completions`` with
``stream: true`` for the bench: SSE chunks, a usage chunk, ``[DONE]``; a Bearer key; and a
configurable share of failing requests so error accounting can be checked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ServerState:
    key: str = "sk-test"
    delay_s: float = 0.002
    fail_every: int = 0  # every n-th request answers 500 (0: never)
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.headers.get("Authorization") != f"Bearer {state.key}":
                self._json(401, {"error": {"message": "bad key", "type": "auth", "code": None}})
                return
            with state.lock:
                state.requests += 1
                number = state.requests
                state.bodies.append(body)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                if state.fail_every and number % state.fail_every == 0:
                    self._json(500, {"error": {"message": "boom", "type": "server_error"}})
                    return
                self._stream(body)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _stream(self, body: dict[str, Any]) -> None:
            chat = self.path.endswith("/chat/completions")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            count = int(body["max_tokens"])
            for i in range(count):
                time.sleep(state.delay_s)
                piece = f" t{i}"
                choice = {"index": 0, "delta": {"content": piece}} if chat else {"text": piece}
                self._event({"choices": [choice]})
            self._event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": count}})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

    return Handler


@contextmanager
def serve(state: ServerState) -> Iterator[str]:
    """Run the server on a free port; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
