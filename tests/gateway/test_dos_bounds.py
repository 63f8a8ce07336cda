"""Denial-of-service bounds at the HTTP edge, against a real ``modelyard serve``.

A second server runs on the session server's home with small limits (a 2 s template budget,
one renderer, 100 messages, 4 KiB of prompt text), and serves a crafted GGUF whose
``tokenizer.chat_template`` never finishes rendering. The tests check liveness and the right
answers, never speed: the hostile request gets its 400 while ``/healthz`` keeps answering;
a request without a valid key is answered 401 from its headers, without its body; the body
limit holds while a body streams in; and no credential reaches the server's logs.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.intake.importer import import_path
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.gateway.conftest import Server, second_server

CHAT = "/v1/chat/completions"
FOREVER = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
MAX_MESSAGES = 100
MAX_PROMPT_BYTES = 4096
WAIT_S = 10.0
"""Generous bound for an answer that must come without waiting for a body or a render."""


def write_gguf_with_template(path: Path, template: str) -> Path:
    """A tiny GGUF (it never reaches an engine) that carries ``template``."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("hostile-template")
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_string("general.license", "apache-2.0")
    writer.add_tokenizer_model("llama")
    writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.ones((16, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def bounded(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with small bounds, serving ``hostile`` (a template that never ends)."""
    settings = Settings(home=server.home)
    db = Database(settings.resolved_database_url)
    try:
        registry = Registry(db, open_blob_store(settings), settings)
        gguf_path = write_gguf_with_template(
            tmp_path_factory.mktemp("hostile") / "hostile.gguf", FOREVER
        )
        version = import_path(gguf_path, registry, settings, name="hostile")
        place(registry, version.ref, Stage.PRODUCTION, actor="tests", reason="dos tests")
    finally:
        db.close()
    bounds = {
        "MODELYARD_TEMPLATE_RENDER_TIMEOUT_S": "2",
        "MODELYARD_TEMPLATE_RENDERERS": "1",
        "MODELYARD_GATEWAY_MAX_MESSAGES": str(MAX_MESSAGES),
        "MODELYARD_GATEWAY_MAX_PROMPT_BYTES": str(MAX_PROMPT_BYTES),
    }
    with second_server(server, bounds, "bounded") as bounded_server:
        yield bounded_server


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def _chat(server: Server, body: dict[str, Any], timeout: float = 60) -> httpx.Response:
    return httpx.post(server.url + CHAT, json=body, headers=server.headers(), timeout=timeout)


def test_a_hostile_template_gets_a_400_while_healthz_keeps_answering(bounded: Server) -> None:
    answer: dict[str, httpx.Response] = {}

    def hostile() -> None:
        body = {"model": "hostile", "messages": [{"role": "user", "content": "hi"}]}
        answer["hostile"] = _chat(bounded, body)

    thread = threading.Thread(target=hostile)
    thread.start()
    healthz_before_hostile = 0
    try:
        while thread.is_alive():
            # liveness, not speed: every probe must be answered (generously bounded), and at
            # least one while the hostile render is still running
            assert httpx.get(bounded.url + "/healthz", timeout=WAIT_S).status_code == 200
            if thread.is_alive():
                healthz_before_hostile += 1
            time.sleep(0.05)
    finally:
        thread.join(timeout=120)
    assert healthz_before_hostile > 0
    error = _error(answer["hostile"], 400)
    assert error["code"] == "template_budget_exceeded"
    assert error["param"] == "messages"
    assert "the chat template of hostile@1" in error["message"]
    # the renderer was replaced: the next hostile request gets the same answer, not a hang
    again = _chat(bounded, {"model": "hostile", "messages": [{"role": "user", "content": "x"}]})
    assert _error(again, 400)["code"] == "template_budget_exceeded"


def test_too_many_messages_are_refused_before_any_rendering(bounded: Server) -> None:
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "x"}
        for i in range(MAX_MESSAGES + 1)
    ]
    # the hostile template would take its whole budget: the count is checked first
    error = _error(_chat(bounded, {"model": "hostile", "messages": turns}), 400)
    assert (error["param"], error["code"]) == ("messages", "too_many_messages")


def test_prompts_over_the_byte_limit_are_refused_before_any_work(bounded: Server) -> None:
    big = "é" * (MAX_PROMPT_BYTES // 2 + 1)  # under the limit in characters, over it in bytes
    body = {"model": "hostile", "messages": [{"role": "user", "content": big}]}
    error = _error(_chat(bounded, body), 400)
    assert (error["param"], error["code"]) == ("messages", "prompt_too_large")
    parts = {
        "model": "hostile",
        "messages": [{"role": "user", "content": [{"type": "text", "text": big}]}],
    }
    assert _error(_chat(bounded, parts), 400)["code"] == "prompt_too_large"
    completion = httpx.post(
        bounded.url + "/v1/completions",
        json={"model": "chat", "prompt": ["a", "b" * MAX_PROMPT_BYTES]},
        headers=bounded.headers(),
        timeout=60,
    )
    error = _error(completion, 400)
    assert (error["param"], error["code"]) == ("prompt", "prompt_too_large")


def _raw(server: Server, head: str, body: bytes = b"") -> tuple[bytes, bool]:
    """Send ``head`` (and ``body``), never the rest; the answer, and whether the server closed
    the connection after it."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        closed = False
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
        except ConnectionResetError:
            closed = True  # closed with part of what we sent unread: a reset, not a FIN
        except TimeoutError:
            pass
    return received, closed


def _head(method: str, headers: dict[str, str]) -> str:
    lines = [f"{method} {CHAT} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"Authorization": "Bearer my-000000000000-not-a-key"},
        {"Authorization": "Basic eDp5"},
    ],
)
@pytest.mark.parametrize(
    "framing",
    [
        {"Content-Length": "1000000"},  # under the body limit: only auth can refuse it
        {"Content-Length": "100000000"},
        {"Transfer-Encoding": "chunked"},
    ],
)
def test_requests_without_a_valid_key_get_401_without_their_body_being_read(
    bounded: Server, auth: dict[str, str], framing: dict[str, str]
) -> None:
    first_chunk = b"10\r\n" + b"{" * 16 + b"\r\n" if "Transfer-Encoding" in framing else b""
    received, closed = _raw(bounded, _head("POST", {**auth, **framing}), first_chunk)
    assert received.startswith(b"HTTP/1.1 401 "), received[:200]
    assert b'"type":"authentication_error"' in received.replace(b" ", b"")
    assert closed, "the connection must be closed: its unread body cannot be skipped"


def _send_until_answered(server: Server, head: str, pieces: list[bytes]) -> tuple[bytes, bool]:
    """Send ``head``, then ``pieces`` one by one until the server answers; read the answer.

    The client stops sending as soon as an answer is readable, as a real client does: a
    server that closes a connection with unread data resets it, and a reset that overtakes
    the answer would lose it."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(head.encode())
        for piece in pieces:
            if select.select([sock], [], [], 0.05)[0]:
                break
            sock.sendall(piece)
        received, closed = b"", False
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
        except ConnectionResetError:
            closed = True  # after the answer was read: the server dropped the unread rest
        except TimeoutError:
            pass
    return received, closed


def test_the_body_limit_holds_while_a_chunked_body_streams_in(bounded: Server) -> None:
    head = _head("POST", {**bounded.headers(), "Transfer-Encoding": "chunked"})
    chunk = b"a" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    pieces = [framed] * (4 * 1024 * 1024 // len(chunk) + 8)  # over 4 MiB, unterminated
    received, closed = _send_until_answered(bounded, head, pieces)
    assert received.startswith(b"HTTP/1.1 413 "), received[:200]
    assert b"request_too_large" in received
    assert closed


def _wait_for(path: Path, needle: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while True:
        text = path.read_text() if path.exists() else ""
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_credentials_never_reach_the_logs(bounded: Server) -> None:
    secrets_sent = ["s3cr3t-api-key-value", "tok-98765-abcdef", "hunter2-password"]
    query = (
        f"api_key={secrets_sent[0]}&access_token={secrets_sent[1]}"
        f"&password={secrets_sent[2]}&limit=7"
    )
    models = httpx.get(f"{bounded.url}/v1/models?{query}", headers=bounded.headers(), timeout=60)
    assert models.status_code == 200
    leaked_key = "my-0123456789ab-leakedsecretvalue"
    refused = httpx.get(
        f"{bounded.url}/v1/models?key={leaked_key}&marker=end",
        headers={"Authorization": f"Bearer {leaked_key}"},
        timeout=60,
    )
    assert refused.status_code == 401
    access = _wait_for(bounded.log.with_suffix(".stdout"), "marker=end")
    assert "GET /v1/models?api_key=[REDACTED]&access_token=[REDACTED]" in access
    assert "&password=[REDACTED]&limit=7" in access
    assert "key=[REDACTED]&marker=end" in access
    everything = access + bounded.log.read_text()
    for secret in [*secrets_sent, leaked_key, bounded.user_key, "leakedsecretvalue"]:
        assert secret not in everything


@pytest.mark.parametrize(
    ("record", "kept", "gone"),
    [
        ("GET /v1/x?secret=abc&client_secret=def&q=hello", "q=hello", ["abc", "def"]),
        ("GET /v1/x?q=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "q=[REDACTED]", ["eyJhbG"]),
        ("GET /v1/x?q=sk-proj-0123456789&page=2", "page=2", ["sk-proj"]),
        ("sent Authorization: Bearer abc.def-ghi to the engine", "sent Authorization", ["abc.def"]),
        ("key my-0123456789ab-Zm9vYmFy was revoked", "was revoked", ["Zm9vYmFy"]),
        ('{"authorization": "Basic eDp5"}', "authorization", ["eDp5"]),
    ],
)
def test_log_records_are_redacted_whatever_logs_them(
    record: str, kept: str, gone: list[str]
) -> None:
    import logging

    from modelyard.gateway.log_redaction import RedactingFilter

    entry = logging.LogRecord("modelyard.x", logging.WARNING, __file__, 1, "%s", (record,), None)
    assert RedactingFilter().filter(entry)
    text = entry.getMessage()
    assert kept in text
    for secret in gone:
        assert secret not in text
