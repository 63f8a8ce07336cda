"""``modelyard tune`` / ``quantize`` refusals: clear errors, exit 1, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import InvalidInput, NotFound
from modelyard.intake.default_model import import_default
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from modelyard.tune.lora import run_lora
from tests.tune.tuned import TICKETS, chat_rows, make_recipe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Registry]]:
    settings = Settings(home=tmp_path_factory.mktemp("tune-cli") / "home", probe_timeout_s=60)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    registry = Registry(db, open_blob_store(settings), settings)
    import_default(registry, settings)
    yield settings, registry
    db.close()


def modelyard(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELYARD_HOME": str(settings.home), "COLUMNS": "200"}
    env.pop("MODELYARD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def refs(registry: Registry) -> list[str]:
    return [v.ref for v in registry.list_versions()]


def test_cli_bad_data_exits_1_before_training(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, registry = home
    data = tmp_path / "bad.jsonl"
    data.write_text(chat_rows(TICKETS) + "not json at all\n")
    before = refs(registry)
    result = modelyard(
        settings, "tune", "lora", "--base", "gemma3-270m", "--data", str(data), "--name", "nope"
    )
    assert result.returncode == 1, result.stderr
    assert "error:" in result.stderr and "line 7: not valid JSON" in result.stderr
    assert "nothing was trained" in result.stderr
    assert refs(registry) == before and not (settings.home / "tune").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"prompt": "only a prompt"}\n', "missing or empty field 'completion'"),
        ("\n\n", "is empty: no rows to train on"),
        (chat_rows([("x " * 200, "y")]), "over --max-seq-len 48"),
    ],
)
def test_bad_data_is_refused_before_the_model_loads(
    home: tuple[Settings, Registry], tmp_path: Path, content: str, expected: str
) -> None:
    settings, registry = home
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    before = refs(registry)
    with pytest.raises(InvalidInput, match=expected):
        run_lora(make_recipe(data, None), registry, settings)
    assert refs(registry) == before and not (settings.home / "tune").exists()


def test_bad_eval_file_is_refused_too(home: tuple[Settings, Registry], tmp_path: Path) -> None:
    settings, registry = home
    data = tmp_path / "train.jsonl"
    data.write_text(chat_rows(TICKETS))
    bad_eval = tmp_path / "eval.jsonl"
    bad_eval.write_text('{"messages": []}\n')
    with pytest.raises(InvalidInput, match=r"--eval [\s\S]*at least two messages"):
        run_lora(make_recipe(data, bad_eval), registry, settings)


def test_resume_without_a_checkpoint_is_refused(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, registry = home
    data = tmp_path / "train.jsonl"
    data.write_text(chat_rows(TICKETS))
    with pytest.raises(InvalidInput, match="nothing to resume"):
        run_lora(make_recipe(data, None), registry, settings, resume=True)


def test_unknown_base_is_refused(home: tuple[Settings, Registry], tmp_path: Path) -> None:
    settings, registry = home
    data = tmp_path / "train.jsonl"
    data.write_text(chat_rows(TICKETS))
    with pytest.raises(NotFound, match="no model named 'missing'"):
        run_lora(make_recipe(data, None, base="missing"), registry, settings)


def test_cli_quantize_refuses_requantizing_and_says_why(home: tuple[Settings, Registry]) -> None:
    settings, registry = home
    before = refs(registry)
    result = modelyard(settings, "quantize", "gemma3-270m", "--type", "Q8_0")
    assert result.returncode == 1
    assert "already quantized (Q4_K_M)" in result.stderr and "--allow-requantize" in result.stderr
    assert refs(registry) == before


def test_cli_quantize_report_json_and_chart(
    home: tuple[Settings, Registry], tmp_path: Path
) -> None:
    settings, _ = home
    chart = tmp_path / "levels.svg"
    result = modelyard(
        settings, "quantize", "report", "gemma3-270m", "--json", "--chart", str(chart)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (level,) = report["levels"]
    assert level["level"] == "Q4_K_M" and level["perplexity"] > 1 and level["tokens_per_s"] > 0
    assert level["perplexity_delta"] == 0.0 and report["reference"] == "gemma3-270m@1"
    assert chart.read_text().startswith("<svg")


def test_cli_quantize_with_allow_requantize_records_it(home: tuple[Settings, Registry]) -> None:
    """Runs after the report test (file order): it adds a level to the default's family."""
    settings, registry = home
    result = modelyard(
        settings, "quantize", "gemma3-270m", "--type", "Q4_0", "--allow-requantize", "--json"
    )
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert made["ref"] == "gemma3-270m-q4_0@1" and made["origin"] == "quantized"
    lineage = made["lineage"]
    assert lineage["requantized"] is True and lineage["source_quantization"] == "Q4_K_M"
    assert lineage["source"] == "gemma3-270m@1" and lineage["type"] == "Q4_0"
    assert registry.get("gemma3-270m-q4_0").metadata["quantization"] == "Q4_0"
