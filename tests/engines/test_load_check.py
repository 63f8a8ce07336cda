"""The engine checks the bytes it loads: a stored model with one byte flipped is never served.

A real gateway (uvicorn on a free port) with a real engine worker pool on the real default
model: served while intact; after one byte of its blob is flipped on disk, a restarted
gateway refuses to load it (503), raises a blocking advisory, shows the refusal in
``/admin/workers`` and ``models show``, and ``/readyz`` is not ready.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.engines.load_check import LoadCheck, sha256_of_fd
from modelyard.engines.worker_process import LoadRefused
from modelyard.gateway.app import create_app
from modelyard.governance.keys import KeyStore
from modelyard.intake.default_model import DEFAULT_MODEL_NAME
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.catalog.attest import flip_byte, register_file
from tests.harness import run_modelyard, serve_in_thread

CHAT = "/v1/chat/completions"


def test_sha256_of_fd_reads_the_open_file_not_the_path(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (9 << 20) + b"tail")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 5, os.SEEK_SET)
        path.unlink()  # replaced under its name after the open: the descriptor still reads it
        path.write_bytes(b"other bytes")
        assert sha256_of_fd(fd) == hashlib.sha256(b"x" * (9 << 20) + b"tail").hexdigest()
        assert os.lseek(fd, 0, os.SEEK_CUR) == 5  # pread: the offset is left alone
    finally:
        os.close(fd)


def test_a_mismatch_is_refused_even_when_the_advisory_cannot_be_recorded(
    tmp_path: Path, sqlite_settings: Settings
) -> None:
    from tests.engines.test_workers import version_for  # a version the catalog does not know

    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF not what the digest says")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(LoadRefused, match="do not match its sha256"):
            LoadCheck(sqlite_settings)(version_for(path, "ghost"), fd)
    finally:
        os.close(fd)


def test_a_flipped_byte_is_never_served(tmp_path: Path, default_gguf: Path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        worker_slots=1,
        worker_ctx_per_slot=512,
        worker_threads=1,
        worker_start_timeout_s=120,
    )
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    try:
        registry = Registry(db, open_blob_store(settings), settings)
        model = register_file(registry, default_gguf, DEFAULT_MODEL_NAME, created_by="tests")
        place(registry, model.ref, Stage.PRODUCTION, actor="tests", reason="load check")
        keys = KeyStore(db, settings)
        _, admin = keys.create("admin", admin=True, created_by="tests", actor="tests")
    finally:
        db.close()
    headers = {"Authorization": f"Bearer {admin}"}
    body = {"model": model.ref, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}

    with serve_in_thread(create_app(settings)) as base:
        assert httpx.get(f"{base}/readyz", headers=headers).status_code == 200
        assert httpx.post(base + CHAT, json=body, headers=headers, timeout=120).status_code == 200

    flip_byte(open_blob_store(settings).path_for(model.digest), model.size_bytes // 2)

    with serve_in_thread(create_app(settings)) as base:
        reply = httpx.post(base + CHAT, json=body, headers=headers, timeout=120)
        assert reply.status_code == 503, reply.text
        error = reply.json()["error"]
        assert error["code"] in ("model_blocked", "model_unavailable")
        assert "integrity-" in error["message"]
        ready = httpx.get(f"{base}/readyz", headers=headers)
        assert ready.status_code == 503
        check = ready.json()["checks"][f"model {model.ref}"]
        assert check.startswith("refused:") and "do not match its sha256" in check
        anonymous = httpx.get(f"{base}/readyz")  # a load balancer: no key, no details
        assert (anonymous.status_code, anonymous.json()) == (503, {"status": "not_ready"})
        workers = httpx.get(f"{base}/admin/workers", headers=headers).json()["data"]
        (worker,) = [w for w in workers if w["model"] == model.ref]
        assert worker["state"] == "failed" and worker["pid"] is None
        assert "do not match its sha256" in worker["refused"]

    db = Database(settings.resolved_database_url)
    try:
        (advisory,) = Advisories(Registry(db, open_blob_store(settings), settings)).list(model.ref)
    finally:
        db.close()
    assert advisory.id.startswith("integrity-")
    assert (advisory.action, advisory.severity, advisory.created_by) == (
        "block",
        "critical",
        "modelyard",
    )
    shown = run_modelyard(settings.home, "models", "show", model.ref, "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert [a["id"] for a in record["load_refused"]] == [advisory.id]
    assert "do not match its sha256" in record["worker"]["refused"]
    text = run_modelyard(settings.home, "models", "show", model.ref)
    assert "load refused" in text.stdout and advisory.id in text.stdout
