"""Crash isolation: bad schemas, a worker killed under load, a model that crashes its loader.

All against the real gateway and real llama-server workers: the gateway, its audit log and
the other models must be untouched by whatever happens to one worker.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.catalog.attest import register_file
from tests.factories import write_gguf_with_duplicate_vocab
from tests.gateway.conftest import EOS_BAN, Server
from tests.harness import run_modelyard

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "Say hi."}]
BAD_SCHEMAS = [
    {"type": "object", "properties": {"a": {"$ref": "#/definitions/missing"}}},
    {"type": "foo"},
    {"type": "string", "pattern": "^a{99999999}$"},
    {"type": "integer", "minimum": "x"},
    {"enum": []},
    {"type": "array", "minItems": 5, "maxItems": 2},
    {"type": "string", "maxLength": 10**9},
]


def _workers(server: Server) -> list[dict[str, Any]]:
    reply = httpx.get(server.url + "/admin/workers", headers=server.headers(server.admin_key))
    assert reply.status_code == 200, reply.text
    data: list[dict[str, Any]] = reply.json()["data"]
    return data


def _gemma_worker(server: Server) -> dict[str, Any]:
    return next(w for w in _workers(server) if w["model"] == "gemma3-270m@1")


def _wait(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _chat_ok(server: Server) -> None:
    reply = httpx.post(
        server.v1 + "/chat/completions",
        json={"model": "chat", "messages": HI, "max_tokens": 4},
        headers=server.headers(),
        timeout=120,
    )
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("schema", BAD_SCHEMAS)
def test_schemas_the_engine_rejects_are_400_and_nothing_crashes(
    server: Server, schema: dict[str, Any]
) -> None:
    pid = _gemma_worker(server)["pid"] if any(_workers(server)) else None
    body = {
        "model": "chat",
        "messages": HI,
        "max_tokens": 8,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    reply = httpx.post(server.url + CHAT, json=body, headers=server.headers(), timeout=60)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "response_format"
    _chat_ok(server)
    if pid is not None:
        assert _gemma_worker(server)["pid"] == pid  # the same worker process serves on


def test_startup_log_names_the_engine_binary(server: Server) -> None:
    log = server.log.read_text()
    assert "engine workers: llama-server" in log and "backend cpu" in log


def _stream(server: Server, outcomes: list[str], index: int) -> None:
    body = {
        "model": "gemma3-270m",
        "prompt": f"Story {index}: once upon a time",
        "max_tokens": 400,
        "logit_bias": EOS_BAN,
        "stream": True,
    }
    try:
        with httpx.stream(
            "POST", server.v1 + "/completions", json=body, headers=server.headers(), timeout=120
        ) as reply:
            if reply.status_code != 200:
                outcomes.append(f"status {reply.status_code}")
                return
            text = "\n".join(reply.iter_lines())
    except httpx.HTTPError as exc:
        outcomes.append(f"transport {exc}")
        return
    if '"error"' in text:
        outcomes.append("error event")
    elif text.rstrip().endswith("data: [DONE]"):
        outcomes.append("complete")
    else:
        outcomes.append("cut short")


def test_kill_9_of_a_worker_under_load(server: Server) -> None:
    _chat_ok(server)
    before = _gemma_worker(server)
    outcomes: list[str] = []
    threads = [threading.Thread(target=_stream, args=(server, outcomes, i)) for i in range(4)]
    for thread in threads:
        thread.start()
    _wait(lambda: server.metric("modelyard_busy_slots") >= 4)
    time.sleep(0.5)  # tokens are flowing on every stream
    os.kill(before["pid"], signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=180)
    assert outcomes.count("error event") >= 1, outcomes
    assert "cut short" not in outcomes, outcomes  # a client always learns what happened
    # The gateway answers meanwhile; the worker comes back with a new process.
    assert httpx.get(server.url + "/healthz").status_code == 200
    after = _wait(lambda: (w := _gemma_worker(server))["state"] == "ready" and w, timeout=120)
    assert after["pid"] != before["pid"] and after["restarts"] >= 1
    _chat_ok(server)
    settings = Settings(home=server.home)
    db = Database(settings.resolved_database_url)
    try:
        failed = [
            r
            for r in iter_records(db, Filter(kind="request"))
            if r["details"].get("error") == "worker_stopped"
        ]
    finally:
        db.close()
    # a stream whose first token had not come yet is answered 503 before its headers (a
    # clean error too); either way, one audit record per request the worker took down
    assert len(failed) == outcomes.count("error event") + outcomes.count("status 503")


def test_a_model_that_crashes_its_loader_is_503_and_nothing_else_is_hurt(
    server: Server, tmp_path: Path, default_gguf: Path
) -> None:
    crafted = write_gguf_with_duplicate_vocab(default_gguf, tmp_path / "dup-vocab.gguf")
    settings = Settings(home=server.home)
    db = Database(settings.resolved_database_url)
    try:
        registry = Registry(db, open_blob_store(settings), settings)
        # Intake refuses this file now (duplicate vocabulary); a version stored before that
        # check, or restored from a backup, must still only take down its own worker.
        broken = register_file(registry, crafted, "dupvocab")
        place(registry, broken.ref, Stage.PRODUCTION, actor="tests", reason="crash isolation")
    finally:
        db.close()
    body = {"model": broken.ref, "messages": HI, "max_tokens": 4}
    reply = httpx.post(
        server.url + CHAT, json=body, headers=server.headers(server.admin_key), timeout=120
    )
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"]["code"] == "model_unavailable"
    assert int(reply.headers["Retry-After"]) >= 1
    _chat_ok(server)  # the other model serves; the gateway is up
    shown = run_modelyard(server.home, "models", "show", broken.ref, "--json")
    assert shown.returncode == 0, shown.stderr
    worker = json.loads(shown.stdout)["worker"]
    assert worker["state"] == "failed" and "while loading the model" in worker["error"]
    text = run_modelyard(server.home, "models", "show", broken.ref)
    assert "engine worker" in text.stdout and "failed" in text.stdout
