"""The Batch API in process: a real gateway app (SQLite and PostgreSQL, real audit log,
limiter and batch runner) with a test engine; the official ``openai`` client over the app's
test transport. The real engine and a gateway restart are in test_batches_server.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from modelyard.audit.query import Filter, iter_records
from modelyard.batch import runner as runner_module
from modelyard.batch.runner import BatchRunner
from modelyard.batch.store import BatchStore
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.base import Event, Finish, Prompt, SamplingParams, TextDelta, prompt_text
from modelyard.gateway.app import create_app
from modelyard.gateway.state import Gateway
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.keys import KeyStore
from modelyard.governance.scopes import Limits, Scope
from modelyard.intake.importer import import_path
from tests.factories import write_tiny_gguf

TERMINAL = {"completed", "failed", "expired", "cancelled"}
# Both stores: one gateway process on SQLite, and the shared database of replicas.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


class ScriptedEngines:
    """An engine provider for these tests: echoes the prompt's last word; ``gate`` (when
    cleared) holds every stream before its first token; ``fail_first`` answers the first N
    streams with an engine error."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.gate: asyncio.Event | None = None
        self.fail_first = 0
        self.started = 0

    @property
    def engine(self) -> ScriptedEngines:
        return self

    async def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Event]:
        text = prompt_text(prompt)
        self.started += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_first > 0:
            self.fail_first -= 1
            from modelyard.errors import Unavailable

            raise Unavailable("the engine restarted", code="worker_stopped")
        self.prompts.append(text)
        word = text.split()[-1] if text.split() else ""
        yield TextDelta(f"echo {word}")
        yield Finish("stop", len(text.split()), 2)

    async def count_tokens(self, prompt: Prompt) -> int:
        return len(prompt_text(prompt).split())

    def lease(self, version: ModelVersion) -> Any:
        import contextlib

        @contextlib.asynccontextmanager
        async def leased() -> AsyncIterator[ScriptedEngines]:
            yield self

        return leased()

    async def prewarm(self, versions: list[ModelVersion]) -> None:
        return None

    def status(self) -> list[dict[str, Any]]:
        return []

    def describe(self) -> str:
        return "scripted engines (tests)"

    async def close(self) -> None:
        return None


@dataclass
class Env:
    gw: Gateway
    client: TestClient
    engines: ScriptedEngines
    keys: dict[str, str]
    now: list[datetime]

    def headers(self, key: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def openai(self, key: str = "alice") -> OpenAI:
        return OpenAI(
            base_url="http://testserver/v1", api_key=self.keys[key], http_client=self.client
        )

    def upload(self, lines: list[dict[str, Any]] | bytes, key: str = "alice") -> Any:
        content = lines if isinstance(lines, bytes) else jsonl(lines)
        return self.client.post(
            "/v1/files",
            files={"file": ("in.jsonl", content, "application/jsonl")},
            data={"purpose": "batch"},
            headers=self.headers(key),
        )

    def create(self, file_id: str, key: str = "alice", **extra: Any) -> Any:
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            **extra,
        }
        return self.client.post("/v1/batches", json=body, headers=self.headers(key))

    def wait(
        self,
        batch_id: str,
        until: Callable[[dict[str, Any]], bool] | None = None,
        key: str = "alice",
    ) -> Any:
        check = until or (lambda b: b["status"] in TERMINAL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = self.client.get(f"/v1/batches/{batch_id}", headers=self.headers(key)).json()
            if check(batch):
                return batch
            time.sleep(0.05)
        raise AssertionError(f"batch {batch_id} never got there: {batch}")

    def stop_runner(self) -> None:
        """Stop the app's batch runner (a gateway going down): batches wait, lines pend."""
        portal = self.client.portal
        assert portal is not None
        portal.call(self.client.app.state.batch_runner.stop)

    def run_on_a_new_runner(self, batch_id: str) -> Any:
        """A new runner (a restarted gateway) takes the batch to its end; the batch."""
        portal = self.client.portal
        assert portal is not None
        runner = BatchRunner(self.client.app, self.gw, clock=self.gw.clock)
        portal.call(runner.start)
        try:
            return self.wait(batch_id)
        finally:
            portal.call(runner.stop)

    def output(self, file_id: str, key: str = "alice") -> list[dict[str, Any]]:
        reply = self.client.get(f"/v1/files/{file_id}/content", headers=self.headers(key))
        assert reply.status_code == 200, reply.text
        return [json.loads(line) for line in reply.text.splitlines()]


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def chat_line(custom_id: str, text: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "tiny",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 8,
            **body,
        },
    }


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> Iterator[Env]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        probe_timeout_s=20,
        batch_poll_s=0.05,
        batch_lease_s=5,
        worker_slots=4,
        gateway_max_body_bytes=16_384,
        batch_max_file_bytes=65_536,
        batch_engine="shared",  # lines in the interactive engine's idle slots (one engine here)
    )
    settings.ensure_home()
    real = Gateway.open(settings)
    engines = ScriptedEngines()
    version = import_path(write_tiny_gguf(tmp_path / "tiny.gguf"), real.registry, settings)
    place(real.registry, version.ref, Stage.PRODUCTION, actor="tests", reason="tests")
    now = [datetime(2026, 11, 30, 12, 0, tzinfo=UTC)]
    gw = replace(real, workers=engines, clock=lambda: now[0])
    store = KeyStore(gw.db, settings)
    keys = {
        name: store.create(name, admin=admin, created_by="tests", actor="tests")[1]
        for name, admin in (("alice", False), ("bob", False), ("root", True))
    }
    with TestClient(create_app(settings, gateway=gw)) as client:
        yield Env(gw, client, engines, keys, now)
    real.db.close()


def test_the_openai_client_runs_a_batch_end_to_end(env: Env) -> None:
    lines = [chat_line(f"req-{i}", f"say word{i}") for i in range(6)]
    client = env.openai()
    path = env.gw.settings.home / "in.jsonl"
    path.write_bytes(jsonl(lines))
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == path.stat().st_size
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.status == "in_progress" and batch.request_counts.total == 6
    done = env.wait(batch.id)
    assert done["status"] == "completed", done
    batch = client.batches.retrieve(batch.id)
    assert batch.request_counts.completed == 6 and batch.request_counts.failed == 0
    assert batch.metadata == {"job": "nightly"} and batch.error_file_id is None
    output = client.files.content(batch.output_file_id).text.splitlines()
    rows = [json.loads(line) for line in output]
    assert [r["custom_id"] for r in rows] == [f"req-{i}" for i in range(6)]  # input order
    for i, row in enumerate(rows):
        assert row["error"] is None and row["response"]["status_code"] == 200
        body = row["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == f"echo word{i}"
        assert row["response"]["request_id"].startswith("req-")
    assert len({r["id"] for r in rows}) == 6
    listed = client.batches.list()
    assert [b.id for b in listed.data] == [batch.id]
    # every line is an audited request of alice's key, naming the batch and line
    records = [
        r for r in iter_records(env.gw.db, Filter(kind="request")) if "batch" in r["details"]
    ]
    assert sorted(r["details"]["batch"]["line"] for r in records) == [1, 2, 3, 4, 5, 6]
    assert {r["details"]["batch"]["id"] for r in records} == {batch.id}
    assert {r["actor"] for r in records} == {"alice"}
    request_ids = {r["details"]["request_id"] for r in records}
    assert request_ids == {row["response"]["request_id"] for row in rows}


def test_a_line_that_fails_is_an_answer_in_the_output_and_the_error_file(env: Env) -> None:
    lines = [
        chat_line("good", "say fine"),
        chat_line("no-such-model", "say x", model="missing"),
        chat_line("too-many", "say y", n=1000),
    ]
    batch = env.create(env.upload(lines).json()["id"]).json()
    done = env.wait(batch["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 3, "completed": 1, "failed": 2}
    rows = env.output(done["output_file_id"])
    assert [r["response"]["status_code"] for r in rows] == [200, 404, 400]
    assert rows[1]["response"]["body"]["error"]["code"]
    errors = env.output(done["error_file_id"])
    assert [r["custom_id"] for r in errors] == ["no-such-model", "too-many"]


def test_upload_checks_every_line_and_says_where(env: Env) -> None:
    content = (
        jsonl([chat_line("a", "x")])
        + b"not json\n"
        + jsonl([{**chat_line("a", "y")}])
        + jsonl([{**chat_line("c", "z"), "url": "/v1/models"}])
        + jsonl([{**chat_line("d", "z"), "method": "GET"}])
    )
    reply = env.upload(content)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "invalid_batch_file"
    for where in ("line 2", "line 3", "line 4", "line 5"):
        assert where in error["message"]
    assert env.upload(b"\n\n").status_code == 400
    assert env.upload("caf\xe9".encode("latin-1")).status_code == 400
    wrong = env.client.post(
        "/v1/files",
        files={"file": ("in.jsonl", jsonl([chat_line("a", "x")]))},
        data={"purpose": "fine-tune"},
        headers=env.headers(),
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "purpose"


def test_bad_bodies_fail_the_batch_with_every_problem_listed(env: Env) -> None:
    lines = [
        chat_line("ok", "x"),
        {**chat_line("no-messages", "x"), "body": {"model": "tiny"}},
        chat_line("streams", "x", stream=True),
        {**chat_line("other-url", "x"), "url": "/v1/completions"},
    ]
    batch = env.create(env.upload(lines).json()["id"]).json()
    assert batch["status"] == "failed" and batch["failed_at"] is not None
    problems = batch["errors"]["data"]
    assert [p["line"] for p in problems] == [2, 3, 4]
    assert problems[1]["param"] == "body.stream"
    assert env.engines.prompts == []


def test_create_refuses_bad_arguments(env: Env) -> None:
    file_id = env.upload([chat_line("a", "x")]).json()["id"]
    assert env.create(file_id, endpoint="/v1/models").status_code == 400
    assert env.create(file_id, completion_window="1h").status_code == 400
    assert env.create("file-nope").status_code == 404
    assert env.create(file_id, metadata={"k": "v" * 513}).status_code == 400
    assert env.create(file_id, key="bob").status_code == 404  # another key's file


def test_files_and_batches_belong_to_their_key(env: Env) -> None:
    file_id = env.upload([chat_line("a", "x")]).json()["id"]
    batch = env.create(file_id).json()
    env.wait(batch["id"])
    for path in (
        f"/v1/files/{file_id}",
        f"/v1/files/{file_id}/content",
        f"/v1/batches/{batch['id']}",
    ):
        assert env.client.get(path, headers=env.headers("bob")).status_code == 404
        assert env.client.get(path, headers=env.headers("root")).status_code == 200
    assert env.client.get("/v1/batches", headers=env.headers("bob")).json()["data"] == []
    assert env.client.get("/v1/files", headers=env.headers("bob")).json()["data"] == []
    cancel = env.client.post(f"/v1/batches/{batch['id']}/cancel", headers=env.headers("bob"))
    assert cancel.status_code == 404
    assert env.client.delete(f"/v1/files/{file_id}", headers=env.headers("bob")).status_code == 404
    mine = env.client.get("/v1/files?purpose=batch", headers=env.headers()).json()["data"]
    assert [f["id"] for f in mine] == [file_id]
    deleted = env.client.delete(f"/v1/files/{file_id}", headers=env.headers())
    assert deleted.json() == {"id": file_id, "object": "file", "deleted": True}
    assert env.client.get(f"/v1/files/{file_id}", headers=env.headers()).status_code == 404
    # the batch copied its lines: its output is still there
    assert env.client.get(f"/v1/batches/{batch['id']}", headers=env.headers()).status_code == 200
    assert env.client.get("/v1/batches").status_code == 401


def test_cancel_lets_lines_in_flight_finish_and_closes_the_rest(env: Env) -> None:
    gate = asyncio.Event()
    env.engines.gate = gate
    lines = [chat_line(f"r{i}", f"say w{i}") for i in range(8)]
    batch = env.create(env.upload(lines).json()["id"]).json()
    deadline = time.monotonic() + 30
    while env.engines.started < 2 and time.monotonic() < deadline:  # batch_concurrency: 2
        time.sleep(0.02)
    cancelling = env.client.post(f"/v1/batches/{batch['id']}/cancel", headers=env.headers())
    assert cancelling.json()["status"] == "cancelling"
    env.client.portal.call(gate.set)  # type: ignore[union-attr]
    done = env.wait(batch["id"])
    assert done["status"] == "cancelled" and done["cancelled_at"] is not None
    rows = env.output(done["output_file_id"])
    answered = [r for r in rows if r["response"] is not None]
    assert len(answered) == 2
    assert {r["error"]["code"] for r in rows if r["response"] is None} == {"batch_cancelled"}
    again = env.client.post(f"/v1/batches/{batch['id']}/cancel", headers=env.headers())
    assert again.status_code == 200
    finished = env.create(env.upload([chat_line("z", "x")]).json()["id"]).json()
    env.wait(finished["id"])
    refused = env.client.post(f"/v1/batches/{finished['id']}/cancel", headers=env.headers())
    assert refused.status_code == 409


def test_a_batch_past_its_window_expires(env: Env) -> None:
    gate = asyncio.Event()
    env.engines.gate = gate
    batch = env.create(env.upload([chat_line(f"r{i}", "x") for i in range(4)]).json()["id"]).json()
    env.now[0] += timedelta(hours=24, seconds=1)
    done = env.wait(batch["id"])
    assert done["status"] == "expired" and done["expired_at"] is not None
    rows = env.output(done["output_file_id"])
    assert {r["error"]["code"] for r in rows} == {"batch_expired"}
    assert done["request_counts"]["failed"] == 4


def test_transient_engine_failures_are_tried_again(env: Env) -> None:
    env.engines.fail_first = 1
    batch = env.create(env.upload([chat_line("r", "say again")]).json()["id"]).json()
    done = env.wait(batch["id"])
    rows = env.output(done["output_file_id"])
    assert rows[0]["response"]["status_code"] == 200, rows
    assert env.gw.metrics.batch_lines.labels("retried")._value.get() == 1


def test_a_revoked_key_s_lines_are_refused(env: Env) -> None:
    gate = asyncio.Event()
    env.engines.gate = gate
    batch = env.create(env.upload([chat_line(f"r{i}", "x") for i in range(5)]).json()["id"]).json()
    KeyStore(env.gw.db, env.gw.settings).revoke("alice", actor="tests")
    env.client.portal.call(gate.set)  # type: ignore[union-attr]
    root = {"Authorization": f"Bearer {env.keys['root']}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = env.client.get(f"/v1/batches/{batch['id']}", headers=root).json()
        if done["status"] == "completed":
            break
        time.sleep(0.05)
    codes = [r["response"]["status_code"] for r in env.output(done["output_file_id"], "root")]
    assert codes.count(401) >= 3 and set(codes) <= {200, 401}


def test_finished_lines_are_not_run_again(env: Env) -> None:
    """A restart: the runner stops, some lines are done (their answers kept), a new runner
    runs only the pending ones."""
    env.stop_runner()
    lines = [chat_line(f"r{i}", f"say w{i}") for i in range(5)]
    batch = env.create(env.upload(lines).json()["id"]).json()
    store = BatchStore(env.gw.db)
    for line_no in (1, 3):
        assert store.record(
            batch["id"], line_no, status_code=200, request_id="req-before", response='{"kept":1}'
        )
    assert not store.record(batch["id"], 1, status_code=500, request_id=None, response="{}")
    done = env.run_on_a_new_runner(batch["id"])
    rows = env.output(done["output_file_id"])
    assert [r["response"]["body"] for r in rows[:1]] == [{"kept": 1}]
    assert rows[2]["response"]["request_id"] == "req-before"
    ran = sorted(p.split()[-1] for p in env.engines.prompts)
    assert ran == ["w1", "w3", "w4"]  # lines 2, 4 and 5 (custom ids r1, r3, r4)


def test_uploads_have_their_own_size_limit(env: Env) -> None:
    lines = [chat_line(f"r{i}", "x" * 200) for i in range(100)]  # ~30 KiB: over the body limit
    assert 16_384 < len(jsonl(lines)) < 65_536
    assert env.upload(lines).status_code == 200
    big = [chat_line(f"r{i}", "x" * 200) for i in range(300)]  # ~90 KiB
    reply = env.upload(big)
    assert reply.status_code == 413 and "65536" in reply.json()["error"]["message"]
    too_big_chat = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 20_000}]}
    assert (
        env.client.post(
            "/v1/chat/completions", json=too_big_chat, headers=env.headers()
        ).status_code
        == 413
    )


def test_an_interactive_request_that_would_wait_preempts_a_batch_line(env: Env) -> None:
    """Four slots, one reserved, two batch lines held in the engine; two interactive requests
    fill the slots, a third would wait: the newest batch line is stopped (and run again
    later), so the interactive request never waits behind the batch."""
    gate = asyncio.Event()
    env.engines.gate = gate
    lines = [chat_line(f"r{i}", f"say w{i}") for i in range(3)]
    batch = env.create(env.upload(lines).json()["id"]).json()
    deadline = time.monotonic() + 30
    while env.engines.started < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    preempted = env.gw.metrics.batch_lines.labels("preempted")
    with ThreadPoolExecutor(3) as pool:
        replies = [
            pool.submit(
                env.client.post,
                "/v1/chat/completions",
                json={"model": "tiny", "messages": [{"role": "user", "content": f"now {i}"}]},
                headers=env.headers("bob"),
            )
            for i in range(3)
        ]
        while preempted._value.get() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert preempted._value.get() >= 1
        portal = env.client.portal
        assert portal is not None
        portal.call(gate.set)
        assert [r.result().status_code for r in replies] == [200, 200, 200]
    done = env.wait(batch["id"])
    assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    rows = env.output(done["output_file_id"])
    contents = [r["response"]["body"]["choices"][0]["message"]["content"] for r in rows]
    assert contents == ["echo w0", "echo w1", "echo w2"]


def test_a_rate_limited_line_waits_and_the_limit_holds(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Budgets and rate limits apply to lines: over the key's requests per minute, a line
    is answered 429 (audited), waits and tries again; it runs once the window has passed."""
    monkeypatch.setattr(runner_module, "MAX_RETRY_AFTER_S", 0.1)
    assert env.gw.governance is not None
    limiter = env.gw.governance.limiter
    clock = [1_800_000_000.0]
    limiter.clock = lambda: clock[0]
    key = create_scoped_key(
        env.gw.db,
        env.gw.settings,
        "metered",
        admin=False,
        team=None,
        scope=Scope(limits=Limits(requests_per_minute=2)),
        created_by="tests",
        actor="tests",
    ).plaintext
    env.keys["metered"] = key
    lines = [chat_line(f"r{i}", f"say w{i}") for i in range(4)]
    batch = env.create(env.upload(lines, key="metered").json()["id"], key="metered").json()

    def refused() -> list[dict[str, Any]]:
        return [
            r
            for r in iter_records(env.gw.db, Filter(kind="request"))
            if r["status"] == 429 and (r["details"].get("batch") or {}).get("id") == batch["id"]
        ]

    deadline = time.monotonic() + 30
    while len(refused()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(refused()) >= 4  # lines 3 and 4, refused again and again in this window
    held = env.client.get(f"/v1/batches/{batch['id']}", headers=env.headers("metered")).json()
    assert held["status"] == "in_progress" and held["request_counts"]["completed"] == 2
    clock[0] += 60  # the next minute
    done = env.wait(batch["id"], key="metered")
    assert done["request_counts"] == {"total": 4, "completed": 4, "failed": 0}


def test_in_idle_mode_lines_run_on_the_batch_workers(env: Env) -> None:
    """``idle`` mode: batch lines go to the batch workers (idle CPU priority, their own
    admission), interactive requests to the gateway's engines; no preemption is needed."""
    batch_engines = ScriptedEngines()
    env.gw.batch_workers = batch_engines
    batch = env.create(env.upload([chat_line(f"r{i}", f"say w{i}") for i in range(3)]).json()["id"])
    done = env.wait(batch.json()["id"])
    assert done["request_counts"]["completed"] == 3
    reply = env.client.post(
        "/v1/chat/completions",
        json={"model": "tiny", "messages": [{"role": "user", "content": "say now"}]},
        headers=env.headers("bob"),
    )
    assert reply.status_code == 200
    assert sorted(p.split()[-1] for p in batch_engines.prompts) == ["w0", "w1", "w2"]
    assert [p.split()[-1] for p in env.engines.prompts] == ["now"]


def _erase(env: Env, subject: str) -> Any:
    from modelyard.audit.erasure import erase_subject
    from modelyard.audit.log import AuditLog

    log = AuditLog(env.gw.db, env.gw.settings)
    try:
        return erase_subject(log, subject, actor="tests", reason="ticket 7")
    finally:
        log.close(checkpoint=False)


def test_erasing_a_subject_removes_their_batch_requests_and_answers(env: Env) -> None:
    lines = [
        chat_line("c1", "say carolsecret1", user="carol"),
        chat_line("a1", "say alicework"),  # no user: alice's key is the subject
        chat_line("c2", "say carolsecret2", user="carol"),
        chat_line("d1", "say davework", user="dave"),
    ]
    uploaded = env.upload(lines).json()
    done = env.wait(env.create(uploaded["id"]).json()["id"])
    assert done["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert done["error_file_id"] is None

    erasure = _erase(env, "carol")

    assert erasure.batch.lines == 2
    batch = env.client.get(f"/v1/batches/{done['id']}", headers=env.headers()).json()
    assert batch["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert batch["output_file_id"] == done["output_file_id"] and batch["error_file_id"]
    assert set(erasure.batch.files) == {uploaded["id"], done["output_file_id"]} | {
        batch["error_file_id"]
    }
    rows = env.output(done["output_file_id"])
    assert [r["custom_id"] for r in rows] == ["c1", "a1", "c2", "d1"]  # input order kept
    for row in (rows[0], rows[2]):
        assert row["response"] is None and row["error"]["code"] == "subject_erased"
    assert rows[1]["response"]["body"]["choices"][0]["message"]["content"] == "echo alicework"
    assert rows[3]["response"]["body"]["choices"][0]["message"]["content"] == "echo davework"
    assert [r["custom_id"] for r in env.output(batch["error_file_id"])] == ["c1", "c2"]
    content = env.client.get(f"/v1/files/{uploaded['id']}/content", headers=env.headers())
    assert [json.loads(x)["custom_id"] for x in content.text.splitlines()] == ["a1", "d1"]
    described = env.client.get(f"/v1/files/{uploaded['id']}", headers=env.headers()).json()
    assert described["bytes"] == len(content.content)
    for file_id in erasure.batch.files:
        text = env.client.get(f"/v1/files/{file_id}/content", headers=env.headers()).text
        assert "carolsecret" not in text
    (event,) = [
        r
        for r in iter_records(env.gw.db, Filter(kind="event"))
        if r["details"].get("event") == "audit.erase"
    ]
    assert event["details"]["batch_lines"] == 2 and event["details"]["batch_files"] == 3

    # the key's own subject: lines that name no user
    assert _erase(env, "alice").batch.lines == 1
    rows = env.output(done["output_file_id"])
    assert [r["error"]["code"] if r["error"] else "ok" for r in rows] == [
        "subject_erased",
        "subject_erased",
        "subject_erased",
        "ok",
    ]


def test_a_subject_s_lines_not_yet_run_never_run_after_erasure(env: Env) -> None:
    # carol has audit records (an interactive request) before her batch lines run
    reply = env.client.post(
        "/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": [{"role": "user", "content": "say hi"}],
            "user": "carol",
        },
        headers=env.headers(),
    )
    assert reply.status_code == 200, reply.text
    env.stop_runner()
    lines = [chat_line("c1", "say carolpending", user="carol"), chat_line("a1", "say other")]
    batch = env.create(env.upload(lines).json()["id"]).json()
    assert _erase(env, "carol").batch.lines == 1
    env.engines.prompts.clear()
    done = env.run_on_a_new_runner(batch["id"])
    assert [p.split()[-1] for p in env.engines.prompts] == ["other"]
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    rows = env.output(done["output_file_id"])
    assert rows[0]["error"]["code"] == "subject_erased" and rows[1]["error"] is None
