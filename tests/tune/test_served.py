"""The tuned version served by a real ``modelyard serve``, called with the official client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.governance.keys import KeyStore
from tests.tune.tuned import TunedModel


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tuned_model: TunedModel) -> Iterator[tuple[str, str]]:
    registry = tuned_model.registry
    ref = tuned_model.outcome.version.ref
    place(registry, ref, Stage.PRODUCTION, actor="tests", reason="tuned model served in tests")
    _, key = KeyStore(registry.db).create("tune-tester", created_by="tests")
    home = tuned_model.settings.home
    port = _free_port()
    env = {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "MODELYARD_WORKER_CTX_PER_SLOT": "512",
        "MODELYARD_WORKER_SLOTS": "2",
    }
    env.pop("MODELYARD_DATABASE_URL", None)
    log = home.parent / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"modelyard serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("modelyard serve did not become healthy")
            time.sleep(0.3)
        yield url, key
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_gateway_serves_the_tuned_version(served: tuple[str, str], tuned_model: TunedModel) -> None:
    url, key = served
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120) as client:
        reply = client.chat.completions.create(
            model="ticket-router",
            messages=[{"role": "user", "content": "The VPN keeps dropping, asap."}],
            max_tokens=8,
            temperature=0,
        )
    assert reply.model == tuned_model.outcome.version.ref
    assert reply.choices[0].message.content
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 8
