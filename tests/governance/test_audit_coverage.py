"""Every request that reaches the model is audited before its first byte, through a real
``modelyard serve`` on PostgreSQL (as a role that is not a superuser, so that revoking its
INSERT privilege on the audit table makes the audit write fail for real), the real default
model and the official ``openai`` client. Also: a 500 and a client disconnect are recorded,
erasure covers the records under a key named for the person, hash mode is an HMAC."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
import sqlalchemy as sa

from modelyard.audit.query import Filter, iter_records, open_requests
from modelyard.audit.verify import verify
from modelyard.config import Settings
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.scopes import Scope
from modelyard.store.database import Database
from tests.conftest import POSTGRES_ADMIN_URL
from tests.governance.serving import Proc, start

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:8]
EOS_BAN = {"1": -100, "106": -100, "212": -100}
"""logit_bias that bans Gemma's end-of-sequence and end-of-turn tokens: long generations."""
PERSON = f"anna-schmidt-{RUN}"


@dataclass
class Site:
    home: Path
    url: str
    """The gateway's database URL (its own role, its own schema)."""
    schema: str
    role: str
    admin: sa.Engine
    server: Proc
    db: Database
    settings: Settings
    admin_key: str
    clients: list[openai.OpenAI]

    def key(self, name: str) -> str:
        made = create_scoped_key(
            self.db,
            self.settings,
            name,
            admin=False,
            team=None,
            scope=Scope(),
            created_by="tests",
            actor="tests",
        )
        return made.plaintext

    def client(self, key: str, server: Proc | None = None) -> openai.OpenAI:
        client = openai.OpenAI(base_url=(server or self.server).v1, api_key=key, max_retries=0)
        self.clients.append(client)
        return client

    def sql(self, statement: str) -> None:
        with self.admin.begin() as conn:
            conn.execute(sa.text(statement))

    def records(self, request_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in iter_records(self.db, Filter())
            if r["details"].get("request_id") == request_id
        ]

    def wait_for(self, what: Callable[[], list[dict[str, Any]]], want: int) -> list[Any]:
        """Poll until ``what()`` has ``want`` items (the server writes after the client left)."""
        deadline = time.monotonic() + 60
        found = what()
        while len(found) < want and time.monotonic() < deadline:
            time.sleep(0.2)
            found = what()
        return found

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"MODELYARD_HOME": str(self.home), "MODELYARD_DATABASE_URL": self.url}
        return subprocess.run(
            [sys.executable, "-m", "modelyard", *args],
            env={**_base_env(), **env},
            capture_output=True,
            text=True,
            timeout=120,
        )


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    admin = sa.create_engine(POSTGRES_ADMIN_URL)
    schema, role = f"t_cov_{RUN}", f"gw_{RUN}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))  # not a superuser: privileges bind
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{role}"'))
    base = POSTGRES_ADMIN_URL.replace("postgres@", f"{role}@", 1)
    url = f"{base}?options=-csearch_path%3D{schema}"
    home = tmp_path_factory.mktemp("coverage") / "home"
    home.mkdir(parents=True)
    settings = Settings(home=home, database_url=url)
    db = Database(url)
    made = create_scoped_key(
        db,
        settings,
        f"admin-{RUN}",
        admin=True,
        team=None,
        scope=Scope(),
        created_by="t",
        actor="t",
    )
    server = start(home, "cov", {"MODELYARD_DATABASE_URL": url})
    site = Site(home, url, schema, role, admin, server, db, settings, made.plaintext, [])
    try:
        yield site
    finally:
        for client in site.clients:
            client.close()
        server.stop()
        db.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_a_stream_gets_503_before_any_content_when_the_audit_insert_is_refused(
    site: Site,
) -> None:
    client = site.client(site.key(f"closed-{RUN}"))
    before = len(list(iter_records(site.db, Filter())))
    site.sql(f'REVOKE INSERT ON "{site.schema}".audit_records FROM "{site.role}"')
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(
                model="gemma3-270m",
                messages=[{"role": "user", "content": "Say hi"}],
                max_tokens=8,
                stream=True,
            )
        assert caught.value.status_code == 503
        assert "audit log cannot be written" in caught.value.message
        with httpx.stream(
            "POST",
            f"{site.server.v1}/completions",
            json={"model": "gemma3-270m", "prompt": "Hi", "max_tokens": 8, "stream": True},
            headers={"Authorization": f"Bearer {client.api_key}"},
            timeout=60,
        ) as raw:
            body = raw.read().decode()
        assert raw.status_code == 503 and "data:" not in body  # no content, no SSE frame
        assert json.loads(body)["error"]["type"]
        with pytest.raises(openai.InternalServerError) as plain:
            client.completions.create(model="gemma3-270m", prompt="Hi", max_tokens=2)
        assert plain.value.status_code == 503
    finally:
        site.sql(f'GRANT INSERT ON "{site.schema}".audit_records TO "{site.role}"')
    assert len(list(iter_records(site.db, Filter()))) == before  # nothing half-written
    raw_ok = client.chat.completions.with_raw_response.create(
        model="gemma3-270m",
        messages=[{"role": "user", "content": "Say hi"}],
        max_tokens=4,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw_ok.parse() if c.choices)
    accepted, done = site.records(raw_ok.headers["X-Request-Id"])
    assert accepted["kind"] == "request.accepted" and accepted["prompt"] is not None
    assert "Say hi" in accepted["prompt"]
    assert (done["kind"], done["status"]) == ("request", 200)
    assert done["details"]["accepted_seq"] == accepted["seq"] and done["response"] == text
    assert verify(site.db, site.settings).ok


def _kill_workers(server: Proc) -> int:
    """SIGKILL the gateway's llama-server workers (a model crashing mid-answer)."""
    killed = 0
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        if "llama-server" in " ".join(child.cmdline()):
            child.kill()
            killed += 1
    return killed


def test_a_worker_dying_mid_answer_is_recorded(site: Site) -> None:
    victim = start(site.home, "crash", {"MODELYARD_DATABASE_URL": site.url})  # its own workers
    try:
        _crash_mid_stream(site, victim)
    finally:
        victim.stop()


@contextmanager
def _long_stream(v1: str, key: str, *, timeout: float) -> Iterator[httpx.Response]:
    """A streamed completion that cannot end early (end-of-text tokens banned)."""
    body = {
        "model": "gemma3-270m",
        "prompt": "Once upon a time",
        "max_tokens": 400,
        "logit_bias": EOS_BAN,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", f"{v1}/completions", json=body, headers=headers, timeout=timeout
    ) as response:
        yield response


def _crash_mid_stream(site: Site, victim: Proc) -> None:
    key = site.key(f"crash-{RUN}")
    with _long_stream(victim.v1, key, timeout=120) as response:
        assert response.status_code == 200
        request_id = response.headers["X-Request-Id"]
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: {"))
        assert '"text"' in first
        assert _kill_workers(victim) >= 1
        rest = list(lines)
    errors = [json.loads(line[6:])["error"] for line in rest if '"error"' in line]
    assert [e["code"] for e in errors] == ["worker_stopped"]  # the stream ends with an error
    assert "data: [DONE]" in rest
    accepted, done = site.wait_for(lambda: site.records(request_id), 2)
    assert (done["status"], done["details"]["error"]) == (503, "worker_stopped")
    assert done["details"]["accepted_seq"] == accepted["seq"]


@pytest.mark.parametrize(
    ("what", "route", "fields"),
    [
        ("stop", "completions", '"prompt": "Hi", "stop": ["\\ud800"]'),  # a lone surrogate
        ("prompt", "completions", '"prompt": "Hi \\ud800 there"'),
        ("chat", "chat/completions", '"messages": [{"role": "user", "content": "Hi \\ud800"}]'),
    ],
)
def test_text_the_engine_cannot_encode_is_a_recorded_400(
    site: Site, what: str, route: str, fields: str
) -> None:
    name = f"stopper-{what}-{RUN}"
    key = site.key(name)
    body = '{"model": "gemma3-270m", "max_tokens": 2, ' + fields + "}"
    response = httpx.post(
        f"{site.server.v1}/{route}",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_unicode"
    accepted, done = iter_records(site.db, Filter(actor=name))  # errors carry no request id
    assert (done["status"], done["details"]["accepted_seq"]) == (400, accepted["seq"])
    assert done["details"]["error"] == "invalid_unicode"


def test_a_4xx_from_the_engine_is_recorded(site: Site) -> None:
    name = f"long-{RUN}"
    client = site.client(site.key(name))
    with pytest.raises(openai.BadRequestError) as caught:  # more than the 512-token context
        client.completions.create(
            model="gemma3-270m", prompt="alpha beta gamma delta " * 300, max_tokens=2
        )
    assert caught.value.code == "context_length_exceeded"
    accepted, done = iter_records(site.db, Filter(actor=name))  # errors carry no request id
    assert (done["status"], done["details"]["error"]) == (400, "context_length_exceeded")
    assert done["details"]["accepted_seq"] == accepted["seq"]


def test_a_client_disconnect_mid_stream_is_recorded(site: Site) -> None:
    key = site.key(f"leaver-{RUN}")
    with _long_stream(site.server.v1, key, timeout=60) as response:
        assert response.status_code == 200
        request_id = response.headers["X-Request-Id"]
        chunks = response.iter_lines()
        got = [next(chunks) for _ in range(6)]
    assert any(line.startswith("data: {") for line in got)
    found = site.wait_for(lambda: site.records(request_id), 2)
    accepted, done = found
    assert (done["kind"], done["status"]) == ("request", 499)
    assert done["details"]["accepted_seq"] == accepted["seq"]
    assert done["response"] and done["prompt"] is None  # what was sent before it left


def test_erasure_covers_the_records_under_a_key_named_for_the_person(site: Site) -> None:
    headers = {"Authorization": f"Bearer {site.admin_key}"}
    made = httpx.post(f"{site.server.url}/admin/keys", headers=headers, json={"name": PERSON})
    assert made.status_code == 201, made.text
    client = site.client(made.json()["key"])
    raw = client.completions.with_raw_response.create(
        model="gemma3-270m", prompt="My diagnosis is private", max_tokens=3
    )
    request_id = raw.headers["X-Request-Id"]
    with site.admin.connect() as conn:
        dump = (
            conn.execute(sa.text(f'SELECT * FROM "{site.schema}".audit_records')).mappings().all()
        )
    assert PERSON not in json.dumps([dict(r) for r in dump], default=str)
    assert {r["actor"] for r in site.records(request_id)} == {PERSON}  # opened for readers

    erased = site.cli("audit", "erase", PERSON, "--yes", "--json")
    assert erased.returncode == 0, erased.stderr
    listing = json.loads(erased.stdout)
    seqs = {r["seq"] for r in site.records(request_id)}
    assert seqs <= set(listing["records"]["request"]) | set(listing["records"]["request.accepted"])
    assert listing["records"]["event"]  # the key.create event names the key: covered too
    for record in site.records(request_id):
        assert record["actor"] == "[erased]"
    accepted = next(r for r in site.records(request_id) if r["kind"] == "request.accepted")
    assert accepted["prompt"] == "[erased]"
    verified = site.cli("audit", "verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"], verified.stdout


def test_hash_mode_stores_an_hmac_not_the_plain_sha256(site: Site) -> None:
    hashing = start(
        site.home,
        "hash",
        {"MODELYARD_DATABASE_URL": site.url, "MODELYARD_AUDIT_STORE_TEXT": "hash"},
    )
    try:
        client = site.client(site.key(f"hasher-{RUN}"), hashing)
        prompt = f"Is patient {RUN} diabetic?"
        raw = client.completions.with_raw_response.create(
            model="gemma3-270m", prompt=prompt, max_tokens=2
        )
    finally:
        hashing.stop()
    accepted = next(
        r for r in site.records(raw.headers["X-Request-Id"]) if r["kind"] == "request.accepted"
    )
    secret = (site.home / "audit" / "text.secret").read_bytes()
    assert accepted["text_mode"] == "hmac-sha256" and accepted["prompt"] is None
    assert accepted["prompt_sha256"] != hashlib.sha256(prompt.encode()).hexdigest()
    assert accepted["prompt_sha256"] == hmac.new(secret, prompt.encode(), "sha256").hexdigest()
    seq = str(accepted["seq"])
    assert site.cli("audit", "match", seq, "--text", prompt).returncode == 0
    assert site.cli("audit", "match", seq, "--text", "Is patient 1 diabetic?").returncode == 1


def test_zz_no_request_is_left_open(site: Site) -> None:
    assert open_requests(site.db) == []  # every accepted request got its completion record
