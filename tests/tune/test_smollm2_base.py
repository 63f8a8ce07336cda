"""Tuning a non-Gemma base: the bundled SmolLM2 (llama architecture) is refused clearly.

LoRA tuning builds its trainable model from a GGUF for the architectures it knows (gemma3);
a llama base is refused before any data is read or anything is written, naming why."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import InvalidInput
from modelyard.intake.bundled import bundled_model, import_one
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from modelyard.tune.lora import run_lora
from tests.tune.tuned import TICKETS, chat_rows, make_recipe

REFUSAL = "LoRA tuning supports GGUF bases of architecture gemma3; this base is llama"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Registry]]:
    settings = Settings(home=tmp_path_factory.mktemp("tune-smollm2") / "home", probe_timeout_s=60)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    registry = Registry(db, open_blob_store(settings), settings)
    import_one(registry, settings, bundled_model("smollm2-135m"))
    yield settings, registry
    db.close()


def test_a_llama_base_is_refused_before_any_work(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, registry = home
    data = tmp_path / "train.jsonl"
    data.write_text(chat_rows(TICKETS))
    with pytest.raises(InvalidInput, match=REFUSAL) as refused:
        run_lora(make_recipe(data, None, base="smollm2-135m"), registry, settings)
    assert refused.value.param == "base"
    assert [v.ref for v in registry.list_versions()] == ["smollm2-135m@1"]
    assert not (settings.home / "tune").exists()


def test_cli_tune_lora_on_smollm2_exits_1_naming_why(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, registry = home
    data = tmp_path / "train.jsonl"
    data.write_text(chat_rows(TICKETS))
    env = {**os.environ, "MODELYARD_HOME": str(settings.home), "COLUMNS": "200"}
    env.pop("MODELYARD_DATABASE_URL", None)
    args = ["tune", "lora", "--base", "smollm2-135m", "--data", str(data), "--name", "tickets"]
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"error: {REFUSAL}" in result.stderr and "Traceback" not in result.stderr
    assert [v.ref for v in registry.list_versions()] == ["smollm2-135m@1"]
    assert not (settings.home / "tune").exists()
