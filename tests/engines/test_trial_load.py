"""Trial loads in a sandboxed engine worker, and the ``trial_load`` gate that needs one:
real llama-server processes on the real default model and on a GGUF that aborts llama.cpp."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.engines.trial_load import run_trial_load
from modelyard.errors import Forbidden
from modelyard.governance.policy import load_policy
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.catalog.attest import register_file
from tests.factories import write_gguf_with_duplicate_vocab
from tests.harness import run_modelyard

POLICY = """
[policy.stages.approved]
trial_load = true
"""


@pytest.fixture
def local(sqlite_settings: Settings) -> Iterator[Registry]:
    (sqlite_settings.home / "modelyard.toml").write_text(POLICY, encoding="utf-8")
    db = Database(sqlite_settings.resolved_database_url)
    yield Registry(db, open_blob_store(sqlite_settings), sqlite_settings)
    db.close()


def test_the_default_model_passes_and_may_be_approved(
    sqlite_settings: Settings, local: Registry, default_gguf: Path
) -> None:
    model = register_file(local, default_gguf, "gemma")
    lifecycle = Lifecycle(local, sqlite_settings, load_policy(sqlite_settings))
    with pytest.raises(Forbidden, match="trial_load: missing"):
        lifecycle.promote(model.ref, "approved", actor="bob", reason="review")

    result = run_trial_load(local, sqlite_settings, model.ref, actor="carol")
    assert result.ok, result.detail + result.log_tail
    assert result.detail == "loaded and generated 1 token(s)"
    assert result.digest == model.digest and "llama-server" in result.engine

    promotion = lifecycle.promote(model.ref, "approved", actor="bob", reason="review")
    gate = next(r for r in promotion.report.results if r.gate == "trial_load")
    assert gate.status == "passed" and gate.evidence
    assert lifecycle.stage(model.ref)[1].stage == Stage.APPROVED
    events = [
        r["details"]["event"]
        for r in iter_records(local.db, Filter(kind="event"))
        if r["target"] == model.ref
    ]
    assert events == ["model.import", "model.trial_load", "lifecycle.promote"]


def test_a_gguf_that_aborts_llama_cpp_fails_its_trial_and_blocks_promotion(
    tmp_path: Path, sqlite_settings: Settings, local: Registry, default_gguf: Path
) -> None:
    crafted = write_gguf_with_duplicate_vocab(default_gguf, tmp_path / "dup-vocab.gguf")
    model = register_file(local, crafted, "dupvocab")

    shown = run_modelyard(sqlite_settings.home, "models", "trial-load", model.ref, "--json")
    assert shown.returncode == 1, shown.stderr
    result = json.loads(shown.stdout)
    assert result["ok"] is False
    assert "while loading the model" in result["detail"]
    assert result["log_tail"].strip()  # the loader's own last words

    lifecycle = Lifecycle(local, sqlite_settings, load_policy(sqlite_settings))
    lifecycle.promote(model.ref, "candidate", actor="bob", reason="first look")
    with pytest.raises(Forbidden, match=r"trial_load: failed .*while loading the model"):
        lifecycle.promote(model.ref, "approved", actor="bob", reason="review")
    assert lifecycle.stage(model.ref)[1].stage == Stage.CANDIDATE


def test_the_sandbox_limits_bind(
    sqlite_settings: Settings, local: Registry, default_gguf: Path
) -> None:
    model = register_file(local, default_gguf, "gemma")
    tight = sqlite_settings.model_copy(update={"trial_load_memory_mb": 64})
    result = run_trial_load(local, tight, model.ref, actor="carol")
    assert not result.ok
    assert "while loading the model" in result.detail
