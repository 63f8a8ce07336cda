"""Governance through real ``modelyard serve`` processes, the real default model, the real
Redis and the official ``openai`` client: scopes, limits (one process and two sharing Redis),
PII policies (streaming too), fail-closed audit, ``kill -9`` under load, and a canary grep
over everything the servers wrote."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest

from modelyard.audit.checkpoints import read_checkpoints
from modelyard.audit.log import AuditLog
from modelyard.audit.query import Filter, iter_records, open_requests
from modelyard.audit.verify import verify
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.scopes import Limits, Scope
from modelyard.governance.teams import Teams
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.governance.serving import Proc, start

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:8]  # Redis counters outlive a test run: names are unique per run
REDIS = {
    "MODELYARD_REDIS_URL": "redis://127.0.0.1:6379/0",
    "MODELYARD_AUDIT_CHECKPOINT_EVERY": "10",
}
CANARY_EMAIL = f"zq{RUN}.canary@example.com"
CANARY_PHONE = "+49 30 90182077"
CANARY_NAME = "Katrin Zwetschgenbaum"
REPEAT = f"Contacts: {CANARY_EMAIL}, {CANARY_EMAIL}, {CANARY_EMAIL}, {CANARY_EMAIL},"


class Yard:
    def __init__(self, home: Path, server: Proc) -> None:
        self.home = home
        self.server = server
        self.settings = Settings(home=home)
        self.db = Database(self.settings.resolved_database_url)
        self.keys: dict[str, str] = {}
        self.clients: list[openai.OpenAI] = []

    def key(
        self, name: str, *, admin: bool = False, team: str | None = None, **scope: object
    ) -> str:
        full = f"{name}-{RUN}"
        made = create_scoped_key(
            self.db,
            self.settings,
            full,
            admin=admin,
            team=team,
            scope=Scope(**scope),  # type: ignore[arg-type]
            created_by="tests",
            actor="tests",
        )
        self.keys[full] = made.plaintext
        return made.plaintext

    def client(self, key: str, server: Proc | None = None) -> openai.OpenAI:
        client = openai.OpenAI(base_url=(server or self.server).v1, api_key=key, max_retries=0)
        self.clients.append(client)  # closed with the module's yard
        return client

    def record(self, request_id: str) -> dict[str, object]:
        """The request's completion record, with the prompt from its accepted record."""
        found = [
            r
            for r in iter_records(self.db, Filter())
            if r["details"].get("request_id") == request_id
        ]
        accepted = [r for r in found if r["kind"] == "request.accepted"]
        done = [r for r in found if r["kind"] == "request"]
        assert len(accepted) == len(done) == 1, f"audit records for {request_id}: {found}"
        assert done[0]["details"]["accepted_seq"] == accepted[0]["seq"]
        return {**done[0], "prompt": accepted[0]["prompt"]}


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    home = tmp_path_factory.mktemp("governed") / "home"
    home.mkdir(parents=True)
    settings = Settings(home=home)
    db = Database(settings.resolved_database_url)
    admin = create_scoped_key(
        db,
        settings,
        f"admin-{RUN}",
        admin=True,
        team=None,
        scope=Scope(),
        created_by="t",
        actor="t",
    )
    db.close()
    server = start(home, "a", REDIS)
    yard = Yard(home, server)
    yard.keys[f"admin-{RUN}"] = admin.plaintext
    registry = Registry(yard.db, open_blob_store(yard.settings), yard.settings)
    registry.set_alias("chat", "gemma3-270m@1", actor="tests")
    try:
        yield yard
    finally:
        for client in yard.clients:
            client.close()
        server.stop()
        yard.db.close()


def _complete(client: openai.OpenAI, prompt: str = "Hi", **kw: object) -> openai.types.Completion:
    return client.completions.create(
        model="gemma3-270m", prompt=prompt, max_tokens=kw.pop("max_tokens", 2), temperature=0, **kw
    )  # type: ignore[call-overload, no-any-return]


def test_scope_denials_name_what_is_missing(yard: Yard) -> None:
    narrow = yard.client(yard.key("narrow", models=("chat",), routes=("completions",)))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        _complete(narrow)
    assert denied.value.status_code == 403
    assert "may not use model 'gemma3-270m' (allowed: chat)" in denied.value.message
    with pytest.raises(openai.PermissionDeniedError, match="may not use the chat route"):
        narrow.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError, match="may not use the embeddings route"):
        narrow.embeddings.create(model="chat", input="x")
    ok = narrow.completions.create(model="chat", prompt="Hi", max_tokens=2, temperature=0)
    assert ok.choices[0].text is not None
    headers = {"Authorization": f"Bearer {yard.keys[f'narrow-{RUN}']}"}
    admin = httpx.get(f"{yard.server.url}/admin/teams", headers=headers)
    assert admin.status_code == 403 and admin.json()["error"]["type"] == "permission_error"
    expired = yard.client(yard.key("old", expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    with pytest.raises(openai.AuthenticationError, match="expired"):
        _complete(expired)
    Teams(yard.db, yard.settings).create(f"lab-{RUN}", Scope(routes=("chat",)), actor="tests")
    member = yard.client(yard.key("member", team=f"lab-{RUN}"))
    with pytest.raises(
        openai.PermissionDeniedError, match=f"team 'lab-{RUN}' may not use the completions"
    ):
        _complete(member)
    statuses = [r["status"] for r in iter_records(yard.db, Filter(kind="request"))]
    assert statuses == [403, 403, 403, 200, 401, 403]  # refusals are audited too


def test_admin_api(yard: Yard) -> None:
    headers = {"Authorization": f"Bearer {yard.keys[f'admin-{RUN}']}"}
    made = httpx.post(
        f"{yard.server.url}/admin/teams",
        headers=headers,
        json={"name": f"ops-{RUN}", "models": ["chat"], "tokens_per_day": 500},
    )
    assert made.status_code == 201, made.text
    key = httpx.post(
        f"{yard.server.url}/admin/keys",
        headers=headers,
        json={"name": f"bot-{RUN}", "team": f"ops-{RUN}", "pii": "block"},
    )
    assert key.status_code == 201, key.text
    plaintext = key.json()["key"]
    yard.keys[f"bot-{RUN}"] = plaintext
    listed = httpx.get(f"{yard.server.url}/admin/keys", headers=headers).json()["data"]
    (bot,) = [k for k in listed if k["name"] == f"bot-{RUN}"]
    assert bot["team"] == f"ops-{RUN}" and bot["pii"] == "block" and "key" not in bot
    bad = httpx.post(
        f"{yard.server.url}/admin/keys", headers=headers, json={"name": "x", "team": "nope"}
    )
    assert bad.status_code == 404
    assert (
        httpx.post(f"{yard.server.url}/admin/keys/bot-{RUN}/revoke", headers=headers).status_code
        == 200
    )
    with pytest.raises(openai.AuthenticationError):
        _complete(yard.client(plaintext))
    events = [r["details"]["event"] for r in iter_records(yard.db, Filter(kind="event"))]
    assert {"team.create", "key.create", "key.revoke"} <= set(events)


def test_budget_race_200_parallel_admits_exactly_one(yard: Yard) -> None:
    key = yard.key("race", limits=Limits(tokens_per_day=10))  # one request reserves 2 + 4

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            body = {"model": "gemma3-270m", "prompt": "Hi", "max_tokens": 4, "temperature": 0}
            calls = [
                client.post(
                    f"{yard.server.v1}/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                )
                for _ in range(200)
            ]
            return list(await asyncio.gather(*calls))

    responses = asyncio.run(fire())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1 and codes.count(429) == 199, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "tokens per day" in refused.json()["error"]["message"]


def test_redis_shares_one_budget_across_two_gateway_processes(yard: Yard) -> None:
    second = start(yard.home, "b", REDIS)
    try:
        key = yard.key("shared", limits=Limits(tokens_per_day=18))  # three requests of 6
        outcomes = []
        for n in range(6):
            client = yard.client(key, yard.server if n % 2 else second)
            try:
                _complete(client, max_tokens=4)
                outcomes.append(200)
            except openai.RateLimitError:
                outcomes.append(429)
        assert outcomes.count(200) == 3 and outcomes[-1] == 429, outcomes
    finally:
        second.stop()


def test_pii_block_and_redact_logs(yard: Yard) -> None:
    blocked = yard.client(yard.key("blocker", pii="block"))
    with pytest.raises(openai.BadRequestError) as caught:
        _complete(blocked, f"Write to {CANARY_EMAIL} or call {CANARY_PHONE}")
    body = caught.value.response.text
    assert "(EMAIL, PHONE)" in body and CANARY_EMAIL not in body and "90182077" not in body
    logs = yard.client(yard.key("logger", pii="redact-logs"))
    raw = logs.completions.with_raw_response.create(
        model="gemma3-270m",
        prompt=f"{CANARY_NAME} called from {CANARY_PHONE}.",
        max_tokens=4,
        temperature=0,
    )
    record = yard.record(raw.headers["X-Request-Id"])
    assert record["prompt"] == "<PERSON_1> called from <PHONE_1>."
    assert record["text_mode"] == "redacted" and record["status"] == 200


def test_pii_redact_restores_placeholders_non_streaming_and_streaming(yard: Yard) -> None:
    client = yard.client(yard.key("redactor", pii="redact"), yard.server)
    raw = client.completions.with_raw_response.create(
        model="gemma3-270m", prompt=REPEAT, max_tokens=12, temperature=0
    )
    answer = raw.parse().choices[0].text
    assert CANARY_EMAIL in answer  # the model saw only <EMAIL_1>; the caller gets the value
    record = yard.record(raw.headers["X-Request-Id"])
    assert record["prompt"] == "Contacts: <EMAIL_1>, <EMAIL_1>, <EMAIL_1>, <EMAIL_1>,"
    assert "<EMAIL_1>" in str(record["response"]) and CANARY_EMAIL not in str(record["response"])
    stream = client.completions.create(
        model="gemma3-270m", prompt=REPEAT, max_tokens=12, temperature=0, stream=True
    )
    pieces = [chunk.choices[0].text for chunk in stream if chunk.choices]
    assert CANARY_EMAIL in "".join(pieces)
    assert not any("EMAIL_1" in piece for piece in pieces)  # split placeholders reassembled


def test_fail_closed_when_the_audit_log_cannot_be_written(yard: Yard) -> None:
    client = yard.client(yard.key("closed"))
    db_file = yard.home / "modelyard.db"
    with sqlite3.connect(db_file) as conn:
        conn.execute("ALTER TABLE audit_head RENAME TO audit_head_away")
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            _complete(client)
        assert caught.value.status_code == 503
        assert "audit log cannot be written" in caught.value.message
    finally:
        with sqlite3.connect(db_file) as conn:
            conn.execute("ALTER TABLE audit_head_away RENAME TO audit_head")
    _complete(client)


def test_kill_9_under_load_every_answer_has_its_record(yard: Yard) -> None:
    victim = start(yard.home, "c", REDIS)
    key = yard.key("load")
    received: list[str] = []
    errors: list[str] = []

    def call(n: int) -> None:
        body = {"model": "gemma3-270m", "prompt": f"Count {n}:", "max_tokens": 6, "temperature": 0}
        try:
            r = httpx.post(
                f"{victim.v1}/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )
        except httpx.TransportError as exc:
            errors.append(type(exc).__name__)
            return
        if r.status_code == 200 and r.json()["choices"]:
            received.append(r.headers["X-Request-Id"])

    threads = [threading.Thread(target=call, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=120)
    while len(received) < 3 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    victim.kill9()
    for thread in threads:
        thread.join()
    assert len(received) >= 3 and errors, (received, errors)  # some answered, some cut off
    report = verify(yard.db, yard.settings)
    assert report.ok, report.problem
    for request_id in received:
        assert yard.record(request_id)["status"] == 200
    cut_off = open_requests(yard.db)  # accepted before the kill, never completed: visible
    assert cut_off, "requests cut off by kill -9 must show as accepted without completion"
    shown = {r["seq"]: r for r in iter_records(yard.db, Filter(kind="request.accepted"))}
    assert not {shown[seq]["details"]["request_id"] for seq in cut_off} & set(received)
    again = start(yard.home, "d", REDIS)
    try:
        _complete(yard.client(key, again))
    finally:
        again.stop()
    assert verify(yard.db, yard.settings).ok
    log = AuditLog(yard.db, yard.settings)
    head = log.head()  # a clean shutdown signs the head
    log.close(checkpoint=False)
    assert read_checkpoints(yard.settings)[-1].seq == head.seq


def test_zz_no_canary_anywhere_the_servers_wrote(yard: Yard) -> None:
    metrics = httpx.get(
        f"{yard.server.url}/metrics",
        headers={"Authorization": f"Bearer {yard.keys[f'admin-{RUN}']}"},
    ).text
    export = "".join(str(r) for r in iter_records(yard.db, Filter()))
    canaries = [
        CANARY_EMAIL,
        CANARY_PHONE,
        "90182077",
        CANARY_NAME,
        "Zwetschgenbaum",
        *yard.keys.values(),
    ]
    blobs = str(yard.home / "blobs")
    files = [p for p in yard.home.parent.rglob("*") if p.is_file() and not str(p).startswith(blobs)]
    assert any(p.name == "modelyard.db" for p in files)
    for canary in canaries:
        assert canary not in metrics and canary not in export, canary
        for path in files:
            assert canary.encode() not in path.read_bytes(), (canary, path)
