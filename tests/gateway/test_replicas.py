"""Gateway replicas share their state: two ``modelyard serve`` commands on one PostgreSQL
database (a scratch schema), one Redis and one home — replica A a single process, replica B
``MODELYARD_SERVE_WORKERS=2`` (``serve --workers 2``: two gateway processes on one port).

Keys, aliases, budgets and the audit log live in the shared stores, so what one replica (or
the CLI) changes, the others see on their next request. Real engine workers on the bundled
models, one-token answers.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import sqlalchemy as sa

from modelyard.gateway.governance_layer import estimate_tokens
from tests.conftest import POSTGRES_ADMIN_URL
from tests.harness import serve_env, start_gateway, stop_gateway

pytestmark = pytest.mark.slow
KEY_LINE = re.compile(r"^\s*(my-[0-9a-f]{12}-\S+)\s*$", re.MULTILINE)
PROMPT = "Hi"
ENV = {
    "MODELYARD_REDIS_URL": "redis://127.0.0.1:6379/0",
    "MODELYARD_WORKER_SLOTS": "2",
    "MODELYARD_WORKER_CTX_PER_SLOT": "512",
    "MODELYARD_WORKER_THREADS": "1",
    "MODELYARD_N_THREADS": "1",
    "MODELYARD_TEMPLATE_RENDERERS": "1",
    "MODELYARD_AUDIT_CHECKPOINT_INTERVAL_S": "1",
}


@dataclass
class Replicas:
    a: str
    b: str
    b_process: subprocess.Popen[str]
    admin_key: str
    home: Path
    env: dict[str, str]

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def cli(self, *args: str) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "modelyard", *args, "--json"],
            env=serve_env(self.home, self.env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def complete(self, url: str, key: str) -> httpx.Response:
        body = {"model": "gemma3-270m", "prompt": PROMPT, "max_tokens": 1, "temperature": 0}
        return httpx.post(f"{url}/v1/completions", json=body, headers=self.headers(key), timeout=60)

    def create_key(self, url: str, **scope: Any) -> tuple[str, str]:
        """A new key made through the replica at ``url``: its name and secret."""
        name = f"rep-{uuid.uuid4().hex[:8]}"
        answer = httpx.post(
            f"{url}/admin/keys", json={"name": name, **scope}, headers=self.headers(), timeout=30
        )
        assert answer.status_code == 201, answer.text
        return name, str(answer.json()["key"])


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("replicas")
    schema = f"r_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    env = {
        **ENV,
        "MODELYARD_DATABASE_URL": f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}",
    }
    home = root / "home"
    started: list[subprocess.Popen[str]] = []
    try:
        a_proc, a_url = start_gateway(home, root / "a.log", env, stdout=root / "a.out")
        started.append(a_proc)  # the first run: bundled models and the admin key, once
        match = KEY_LINE.search((root / "a.out").read_text())
        assert match, (root / "a.log").read_text()[-2000:]
        b_env = {**env, "MODELYARD_SERVE_WORKERS": "2"}
        b_proc, b_url = start_gateway(home, root / "b.log", b_env, stdout=root / "b.out")
        started.append(b_proc)
        yield Replicas(a_url, b_url, b_proc, match.group(1), home, env)
    finally:
        for proc in started:
            stop_gateway(proc)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _gateway_processes(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """The gateway processes under ``serve --workers``: the children that run engine workers
    (the supervisor's other child is multiprocessing's resource tracker)."""
    children = psutil.Process(proc.pid).children()
    return [c for c in children if any("llama-server" in g.name() for g in c.children())]


def _engine_pids_per_process(replicas: Replicas, url: str) -> set[frozenset[int]]:
    """Ask ``/admin/workers`` on new connections until two gateway processes have answered,
    each with both production GGUF models' workers ready: their worker pids."""
    seen: dict[frozenset[int], int] = {}
    deadline = time.monotonic() + 60
    while len(seen) < 2 or any(ready < 2 for ready in seen.values()):
        assert time.monotonic() < deadline, seen
        with httpx.Client(headers=replicas.headers()) as client:  # a new connection each time
            workers = client.get(f"{url}/admin/workers", timeout=30).json()["data"]
        pids = frozenset(w["pid"] for w in workers if w["pid"])
        seen = {k: v for k, v in seen.items() if not k < pids}  # one still starting its second
        seen[pids] = sum(w["state"] == "ready" for w in workers)
    return set(seen)


def test_serve_workers_runs_processes_that_each_own_their_engine_workers(
    replicas: Replicas,
) -> None:
    answered = _engine_pids_per_process(replicas, replicas.b)  # both reached on the one port
    gateways = _gateway_processes(replicas.b_process)
    owned = {frozenset(g.pid for g in p.children() if "llama-server" in g.name()) for p in gateways}
    assert len(gateways) == 2 and answered == owned  # each its own two, none shared


def test_sigterm_stops_every_gateway_process_and_engine_worker(replicas: Replicas) -> None:
    log = replicas.home.parent / "c.log"
    env = {**replicas.env, "MODELYARD_SERVE_WORKERS": "2"}
    proc, url = start_gateway(replicas.home, log, env, stdout=subprocess.DEVNULL)
    try:
        _engine_pids_per_process(replicas, url)
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert len([p for p in tree if "llama-server" in p.name()]) == 4
    finally:
        stop_gateway(proc)
    assert proc.returncode == 0, log.read_text()[-2000:]
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert alive == []
    assert log.read_text().count("Application shutdown complete") == 2


def _serve_workers(replicas: Replicas, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelyard", "serve", "--port", "0", "--workers", "2"],
        env=serve_env(replicas.home, env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_more_than_one_process_needs_redis(replicas: Replicas) -> None:
    env = {k: v for k, v in replicas.env.items() if k != "MODELYARD_REDIS_URL"}
    result = _serve_workers(replicas, env)
    assert result.returncode == 1 and "MODELYARD_REDIS_URL" in result.stderr


def test_a_process_that_cannot_start_stops_them_all(replicas: Replicas) -> None:
    missing = str(replicas.home / "no-such-llama-server")
    result = _serve_workers(replicas, {**replicas.env, "MODELYARD_LLAMA_SERVER": missing})
    assert result.returncode == 3, result.stderr[-2000:]  # stopped, not restarted forever
    assert "no llama-server binary" in result.stderr
    assert "a gateway process could not start" in result.stderr


def test_a_key_created_through_one_replica_is_accepted_by_the_other(replicas: Replicas) -> None:
    name, key = replicas.create_key(replicas.a)
    for url in (replicas.b, replicas.b, replicas.a):
        assert replicas.complete(url, key).status_code == 200
    revoked = httpx.post(
        f"{replicas.b}/admin/keys/{name}/revoke", headers=replicas.headers(), timeout=30
    )
    assert revoked.status_code == 200, revoked.text
    assert replicas.complete(replicas.a, key).status_code == 401


def _served(replicas: Replicas, url: str, alias: str) -> str:
    with httpx.Client(headers=replicas.headers()) as client:
        answer = client.get(f"{url}/v1/models/{alias}", timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["modelyard"]["version"])


def test_an_alias_moved_by_the_cli_is_seen_by_every_replica_within_a_second(
    replicas: Replicas,
) -> None:
    alias = f"rep-{uuid.uuid4().hex[:6]}"
    replicas.cli("alias", "set", alias, "gemma3-270m@1")
    assert {_served(replicas, url, alias) for url in (replicas.a, replicas.b)} == {"gemma3-270m@1"}
    replicas.cli("alias", "set", alias, "smollm2-135m@1")
    moved = time.monotonic()
    for url in (replicas.a, replicas.b, replicas.b, replicas.b, replicas.b):
        while _served(replicas, url, alias) != "smollm2-135m@1":
            assert time.monotonic() - moved < 1.0, f"{url} still serves the old target"
            time.sleep(0.05)


def test_a_budget_is_exact_under_concurrent_requests_on_both_replicas(
    replicas: Replicas,
) -> None:
    probe = replicas.complete(replicas.a, replicas.admin_key)
    cost = probe.json()["usage"]["total_tokens"]
    reserved = estimate_tokens(PROMPT) + 1  # what each request holds until it settles
    assert cost == reserved  # so every order of reserve and settle admits the same number
    name, key = replicas.create_key(replicas.b, tokens_per_day=5 * cost)
    urls = [replicas.a, replicas.b] * 6
    with ThreadPoolExecutor(len(urls)) as pool:
        answers = list(pool.map(lambda url: replicas.complete(url, key), urls))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 5 + [429] * 7, [a.text for a in answers if a.status_code >= 500]
    usage = replicas.cli("audit", "usage", "--by", "key")
    (used,) = [row for row in usage if row["group"] == name]
    # one audit log holds every request (refusals too) and the five answers' tokens
    assert (used["requests"], used["total_tokens"]) == (12, 5 * cost)


def test_one_audit_log_that_verifies(replicas: Replicas) -> None:
    _, key = replicas.create_key(replicas.a)
    urls = [replicas.a, replicas.b] * 4
    with ThreadPoolExecutor(len(urls)) as pool:
        answers = list(pool.map(lambda url: replicas.complete(url, key), urls))
    assert all(a.status_code == 200 for a in answers)
    report = replicas.cli("audit", "verify")
    assert report["ok"], report["problem"]
    assert report["records"] >= 16  # accepted + completion records of these eight at least
