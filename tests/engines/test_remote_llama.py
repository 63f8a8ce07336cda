"""The real thing: two ``llama-server`` processes serving the default model on loopback are
two replicas of one endpoint version behind a real ``modelyard serve``, used through the
official ``openai`` client. One replica is killed (SIGKILL) while streams run on both: only
the streams in flight on it end, each with a clean error event; every later request is
answered by the survivor."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.engines.binary import find_llama_server
from modelyard.engines.endpoint_registration import EndpointRequest, register_endpoint
from modelyard.engines.endpoint_store import EndpointRules
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.scopes import Scope
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.harness import start_gateway, stop_gateway

pytestmark = pytest.mark.slow

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
UPSTREAM_KEY = "llama-replica-secret-5f1e"
SERVED = "gemma3-270m"
EOS_BAN = {"1": -100, "106": -100, "212": -100}
"""Bans Gemma's end-of-sequence and end-of-turn tokens: every stream runs to max_tokens."""


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    url: str


@contextmanager
def llama_replica(model: Path, log: Path) -> Iterator[Replica]:
    """A llama-server on 127.0.0.1, port 0 (it binds its own and logs it)."""
    binary = find_llama_server(Settings())
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(binary.path),
                "--model",
                str(model),
                "--alias",
                SERVED,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--api-key",
                UPSTREAM_KEY,
                "--ctx-size",
                "1024",
                "--parallel",
                "2",
                "--threads",
                "1",
                "--no-webui",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (match := LISTENING.search(log.read_text(errors="replace"))):
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "llama-server did not start"
            time.sleep(0.05)
        url = match.group(1)
        while httpx.get(f"{url}/health").status_code != 200:
            assert time.monotonic() < deadline, "llama-server did not load the model"
            time.sleep(0.05)
        yield Replica(proc, url)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _prepare(home: Path, urls: tuple[str, str]) -> tuple[str, str]:
    """Allow loopback, register the endpoint, place it in production; (user, admin) keys."""
    settings = Settings(home=home)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    try:
        registry = Registry(db, open_blob_store(settings), settings)
        EndpointRules(db, settings).set("127.0.0.1", "allow", actor="tests")
        request = EndpointRequest("gemma-remote", urls, SERVED, UPSTREAM_KEY, "gemma")
        version = register_endpoint(registry, settings, request, actor="tests")
        place(registry, version.ref, Stage.PRODUCTION, actor="tests", reason="test")
        keys = [
            create_scoped_key(
                db,
                settings,
                name,
                admin=admin,
                team=None,
                scope=Scope(),
                created_by="tests",
                actor="tests",
            ).plaintext
            for name, admin in (("app", False), ("ops", True))
        ]
    finally:
        db.close()
    return keys[0], keys[1]


def _stream(client: openai.OpenAI, started: threading.Event, outcome: list[Any]) -> None:
    try:
        stream = client.chat.completions.create(
            model="gemma-remote",
            messages=[{"role": "user", "content": "Count to a hundred."}],
            max_tokens=96,
            logit_bias=EOS_BAN,
            stream=True,
        )
        text = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
                started.set()
        outcome.append(("ok", "".join(text)))
    except openai.APIError as exc:
        outcome.append(("error", str(exc.message)))


def _replicas(url: str, admin: str) -> dict[str, dict[str, Any]]:
    data = httpx.get(f"{url}/admin/workers", headers={"Authorization": f"Bearer {admin}"}).json()
    (remote,) = [w for w in data["data"] if w["model"] == "gemma-remote@1"]
    return {r["url"]: r for r in remote["replicas"]}


def test_kill_one_replica_mid_run(default_gguf: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with ExitStack() as stack:
        first = stack.enter_context(llama_replica(default_gguf, tmp_path / "a.log"))
        second = stack.enter_context(llama_replica(default_gguf, tmp_path / "b.log"))
        user, admin = _prepare(home, (first.url, second.url))
        env = {"MODELYARD_ENDPOINT_HEALTH_INTERVAL_S": "1", "MODELYARD_N_THREADS": "1"}
        proc, url = start_gateway(home, tmp_path / "serve.log", env)
        stack.callback(stop_gateway, proc)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=user, max_retries=0, timeout=60)

        warm = client.chat.completions.create(
            model="gemma-remote", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
        assert warm.choices[0].finish_reason == "length"

        outcomes: list[Any] = []
        threads = []
        for _ in range(4):  # two on each replica: least outstanding, ties take turns
            started = threading.Event()
            thread = threading.Thread(target=_stream, args=(client, started, outcomes))
            thread.start()
            assert started.wait(30), "a stream did not start"
            threads.append(thread)
        in_flight = _replicas(url, admin)[first.url]["outstanding"]
        first.proc.send_signal(signal.SIGKILL)
        for thread in threads:
            thread.join(60)
        errors = [text for kind, text in outcomes if kind == "error"]
        assert len(outcomes) == 4
        assert 1 <= len(errors) <= in_flight <= 3
        assert all("stopped mid-answer" in e or "upstream" in e for e in errors), errors
        assert UPSTREAM_KEY not in str(outcomes)

        for _ in range(4):  # later requests: the survivor answers every one
            later = client.chat.completions.create(
                model="gemma-remote", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
            )
            assert later.choices[0].finish_reason == "length"
        replicas = _replicas(url, admin)
        assert replicas[second.url]["served"] >= 4 + 2
        dead = replicas[first.url]
        assert dead["failed"] >= 1 and (dead["circuit"] == "open" or dead["healthy"] is False)
        assert UPSTREAM_KEY not in (tmp_path / "serve.log").read_text(errors="replace")

        with pytest.raises(openai.BadRequestError) as raised:  # the upstream's context check
            client.chat.completions.create(
                model="gemma-remote",
                messages=[{"role": "user", "content": "count " * 700}],
                max_tokens=2,
            )
        assert raised.value.code == "context_length_exceeded"
        survivor = _replicas(url, admin)[second.url]
        assert survivor["circuit"] == "closed" and survivor["failed"] == 0
