"""One worker slot and a queue of one: disconnects free the slot; a full queue answers 429."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import EOS_BAN, Server

LONG = {
    "model": "gemma3-270m",
    "prompt": "Once upon a time",
    "max_tokens": 2000,
    "temperature": 0.8,
    "logit_bias": EOS_BAN,
    "stream": True,
}


def _wait_for(check: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _read_some(lines: Iterator[str], count: int = 3) -> None:
    """Read ``count`` events, keeping the iterator (dropping it would close the connection)."""
    seen = 0
    while seen < count:
        if next(lines).startswith("data: "):
            seen += 1


def test_client_disconnect_stops_generation_and_frees_the_slot(small_server: Server) -> None:
    server = small_server
    cancelled_before = server.metric("modelyard_generations_cancelled_total")
    with (
        httpx.Client(timeout=60) as http,
        http.stream(
            "POST", server.url + "/v1/completions", json=LONG, headers=server.headers()
        ) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        _read_some(lines)
        assert server.metric("modelyard_busy_slots") == 1
    # 2000 tokens would take minutes; the slot is free within seconds of the disconnect.
    assert _wait_for(lambda: server.metric("modelyard_busy_slots") == 0, timeout=15)
    assert server.metric("modelyard_generations_cancelled_total") == cancelled_before + 1
    quick = httpx.post(
        server.url + "/v1/completions",
        json={"model": "gemma3-270m", "prompt": "Hi", "max_tokens": 2},
        headers=server.headers(),
        timeout=60,
    )
    assert quick.status_code == 200


def test_non_streaming_client_that_gives_up_frees_the_slot(small_server: Server) -> None:
    server = small_server
    cancelled_before = server.metric("modelyard_generations_cancelled_total")
    body = {**LONG, "stream": False}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            server.url + "/v1/completions",
            json=body,
            headers=server.headers(),
            timeout=httpx.Timeout(60, read=3),
        )
    assert _wait_for(lambda: server.metric("modelyard_busy_slots") == 0, timeout=15)
    assert server.metric("modelyard_generations_cancelled_total") == cancelled_before + 1


def test_full_queue_answers_429_with_retry_after(small_server: Server) -> None:
    server = small_server
    http = httpx.Client(timeout=120)
    waiting_result: dict[str, int] = {}

    def waiting_request() -> None:
        body = {"model": "gemma3-270m", "prompt": "Hi", "max_tokens": 2}
        response = http.post(server.url + "/v1/completions", json=body, headers=server.headers())
        waiting_result["status"] = response.status_code

    try:
        with http.stream(
            "POST", server.url + "/v1/completions", json=LONG, headers=server.headers()
        ) as running:
            lines = running.iter_lines()
            _read_some(lines, 1)
            waiter = threading.Thread(target=waiting_request)
            waiter.start()
            assert _wait_for(lambda: server.metric("modelyard_queue_depth") == 1)
            refused = httpx.post(
                server.url + "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                headers=server.headers(),
            )
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["error"]["type"] == "rate_limit_error"
            assert refused.json()["error"]["code"] == "queue_full"
        waiter.join(timeout=60)
        assert waiting_result == {"status": 200}
    finally:
        http.close()


def test_a_second_serve_creates_no_new_admin_key(small_server: Server) -> None:
    from modelyard.config import Settings
    from modelyard.governance.keys import KeyStore
    from modelyard.store.database import Database

    settings = Settings(home=small_server.home)
    db = Database(settings.resolved_database_url)
    try:
        admins = [k.name for k in KeyStore(db, settings).list() if k.admin]
    finally:
        db.close()
    assert admins == ["admin"]
