"""A real ``modelyard serve --port 0`` in a subprocess (tests/harness.py), on the real default
model.

The session server starts on an empty home, so it also exercises first-run behaviour (the
bundled models imported: gemma3-270m, smollm2-135m and the embedding model minilm; admin key
printed once).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.governance.keys import KeyStore
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.harness import drain, start_gateway, stop_gateway

KEY_LINE = re.compile(r"^\s*(my-[0-9a-f]{12}-\S+)\s*$")
EOS_BAN = {"1": -100, "106": -100, "212": -100}
"""logit_bias that bans Gemma's end-of-sequence and end-of-turn tokens: long generations."""


@dataclass
class Server:
    url: str
    admin_key: str
    user_key: str
    home: Path
    log: Path
    first_stdout: str

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.user_key}"}

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", headers=self.headers(self.admin_key)).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


SERVER_ENV = {"MODELYARD_N_THREADS": "1", "MODELYARD_WORKER_THREADS": "1"}


def _start(home: Path, env_extra: dict[str, str], log: Path) -> tuple[subprocess.Popen[str], str]:
    """``modelyard serve --port 0`` on ``home``; stderr to ``log``, stdout a pipe (the admin key
    of a first run, then the access log: see ``drain``)."""
    return start_gateway(home, log, {**SERVER_ENV, **env_extra}, stdout=subprocess.PIPE)


@pytest.fixture(scope="session")
def gateway_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway") / "home"


@pytest.fixture(scope="session")
def server(gateway_home: Path) -> Iterator[Server]:
    log = gateway_home.parent / "serve.log"
    stdout_log = gateway_home.parent / "serve.stdout"
    proc, url = _start(
        gateway_home,
        {"MODELYARD_WORKER_CTX_PER_SLOT": "1024", "MODELYARD_WORKER_SLOTS": "4"},
        log,
    )
    copying = None
    try:
        assert proc.stdout is not None
        printed = ""
        admin_key = None
        while admin_key is None:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("serve printed no admin key")
            printed += line
            if match := KEY_LINE.match(line):
                admin_key = match.group(1)
        copying = drain(proc, stdout_log)
        settings = Settings(home=gateway_home)
        db = Database(settings.resolved_database_url)
        registry = Registry(db, open_blob_store(settings), settings)
        registry.set_alias("chat", "gemma3-270m@1", actor="tests")
        _, user_key = KeyStore(db, settings).create("tester", created_by="tests", actor="tests")
        db.close()
        yield Server(url, admin_key, user_key, gateway_home, log, printed)
    finally:
        stop_gateway(proc, drained=copying)


@contextmanager
def second_server(server: Server, env_extra: dict[str, str], name: str) -> Iterator[Server]:
    """Another gateway on ``server``'s home, with other settings; its log is
    ``serve-<name>.log`` beside the home, its access log the same with ``.stdout``."""
    log = server.home.parent / f"serve-{name}.log"
    proc, url = _start(server.home, env_extra, log)
    copying = drain(proc, log.with_suffix(".stdout"))
    try:
        yield Server(url, server.admin_key, server.user_key, server.home, log, "")
    finally:
        stop_gateway(proc, drained=copying)


@pytest.fixture(scope="module")
def small_server(server: Server) -> Iterator[Server]:
    """One engine slot and a queue of one, on the same home: for disconnect and 429 tests."""
    slots = {
        "MODELYARD_WORKER_SLOTS": "1",
        "MODELYARD_WORKER_CTX_PER_SLOT": "4096",
        "MODELYARD_GATEWAY_QUEUE_SIZE": "1",
    }
    with second_server(server, slots, "small") as small:
        yield small
