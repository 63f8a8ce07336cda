"""The Batch API against a real ``modelyard serve`` on the real default model, with the
official ``openai`` client: a batch survives a gateway killed with SIGKILL mid-run, and the
restarted gateway resumes it without running a finished line again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from modelyard.audit.query import Filter, iter_records
from modelyard.config import Settings
from modelyard.governance.keys import KeyStore
from modelyard.store.database import Database
from tests.harness import serve_env, start_gateway, stop_gateway

pytestmark = pytest.mark.slow
ENV = {
    "MODELYARD_WORKER_SLOTS": "4",
    "MODELYARD_WORKER_CTX_PER_SLOT": "512",
    "MODELYARD_WORKER_THREADS": "1",
    "MODELYARD_N_THREADS": "1",
    "MODELYARD_TEMPLATE_RENDERERS": "1",
    "MODELYARD_BATCH_LEASE_S": "3",
    "MODELYARD_BATCH_POLL_S": "0.2",
}
LINES = 12


def _lines() -> bytes:
    rows = [
        {
            "custom_id": f"ticket-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gemma3-270m",
                "messages": [{"role": "user", "content": f"Name a colour and the number {i}."}],
                "max_tokens": 24,
                "temperature": 0,
            },
        }
        for i in range(LINES)
    ]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def _done_lines(home: Path, batch_id: str) -> dict[int, str]:
    """The lines recorded so far, with the request id each answer had."""
    db = Database(Settings(home=home).resolved_database_url)
    try:
        with db.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT line_no, request_id FROM batch_lines"
                " WHERE batch_id = ? AND status = 'done'",
                (batch_id,),
            ).all()
    finally:
        db.close()
    return {int(n): str(r) for n, r in rows}


def _cli(home: Path, *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", *args, "--json"],
        env=serve_env(home, ENV),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _assert_batch_worker_runs_at_idle_priority(url: str, admin_key: str) -> None:
    """The lines ran on a batch worker of their own, every thread of it in SCHED_IDLE."""
    workers = httpx.get(
        f"{url}/admin/workers", headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ).json()["data"]
    batch = [w for w in workers if w["pool"] == "batch"]
    assert len(batch) == 1 and batch[0]["pid"], workers
    threads = [int(t) for t in os.listdir(f"/proc/{batch[0]['pid']}/task")]
    assert len(threads) > 1
    assert {os.sched_getscheduler(t) for t in threads} == {os.SCHED_IDLE}


def test_a_batch_survives_a_killed_gateway_and_resumes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    _, key = KeyStore(db, settings).create("batcher", created_by="tests", actor="tests")
    _, admin = KeyStore(db, settings).create("root", admin=True, created_by="tests", actor="tests")
    db.close()
    first, url = start_gateway(home, tmp_path / "first.log", ENV)
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        path = tmp_path / "tickets.jsonl"
        path.write_bytes(_lines())
        with path.open("rb") as handle:
            uploaded = client.files.create(file=handle, purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 300
        while client.batches.retrieve(batch.id).request_counts.completed < 3:
            assert time.monotonic() < deadline, "the first gateway ran no lines"
            time.sleep(0.2)
        _assert_batch_worker_runs_at_idle_priority(url, admin)
    finally:
        first.kill()  # SIGKILL: no shutdown, the lease is not released
        first.wait()
    before = _done_lines(home, batch.id)
    assert 3 <= len(before) < LINES
    second, url = start_gateway(home, tmp_path / "second.log", ENV)
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        deadline = time.monotonic() + 600
        while (status := client.batches.retrieve(batch.id)).status != "completed":
            assert status.status == "in_progress", status
            assert time.monotonic() < deadline, "the second gateway did not finish the batch"
            time.sleep(0.5)
        assert status.request_counts.completed == LINES and status.request_counts.failed == 0
        rows = [
            json.loads(x) for x in client.files.content(status.output_file_id).text.splitlines()
        ]
    finally:
        stop_gateway(second)
    assert [r["custom_id"] for r in rows] == [f"ticket-{i}" for i in range(LINES)]
    for number, row in enumerate(rows, start=1):
        assert row["response"]["status_code"] == 200
        text = row["response"]["body"]["choices"][0]["message"]["content"]
        assert text.strip(), row
        if number in before:  # finished before the kill: kept, not run again
            assert row["response"]["request_id"] == before[number]
    # each line finished before the kill has exactly one completed request in the audit log
    db = Database(settings.resolved_database_url)
    try:
        records = list(iter_records(db, Filter(kind="request")))
    finally:
        db.close()
    finished: dict[int, int] = {}
    for record in records:
        origin = (record.get("details") or {}).get("batch") or {}
        if origin.get("id") == batch.id and record.get("status") == 200:
            finished[origin["line"]] = finished.get(origin["line"], 0) + 1
    assert all(finished.get(n) == 1 for n in before), finished
    assert set(finished) == set(range(1, LINES + 1))
    assert _cli(home, "audit", "verify")["ok"] is True
