"""The three-command flow of docs/advisor.md through the real ``modelyard`` command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from modelyard.cli.app import app
from modelyard.errors import ModelyardError
from tests.harness import run_modelyard


class CLI:
    """The Typer app in process (fast); ``real`` runs the installed command in a subprocess."""

    def __init__(self, home: Path) -> None:
        self.env = {"MODELYARD_HOME": str(home), "COLUMNS": "200", "MODELYARD_DATABASE_URL": ""}
        self.home = home

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(app, list(args), env=self.env)
        if code == 0:
            assert result.exit_code == 0, (result.output, result.exception)
        else:
            error = result.exception
            assert isinstance(error, ModelyardError), (result.output, error)
            assert error.exit_code == code
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def real(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_modelyard(self.home, *args, timeout=300)


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "home")


GPU_BOX = (
    "--gpus", "1xH100-80GB", "--ram-gb", "256", "--bandwidth-gbs", "200",
    "--price", "40000", "--lifetime-years", "4", "--power-watts", "1100",
    "--electricity-per-kwh", "0.30", "--upkeep-per-year", "6000",
)  # fmt: skip


@pytest.mark.slow
def test_detect_recommend_compare_report(cli: CLI, tmp_path: Path) -> None:
    cli("models", "import", "--default")
    local = cli.json("hardware", "detect", "--threads", "1", "--bandwidth-mb", "32")
    assert local["name"] == "local" and local["detected"]
    assert local["memory_bandwidth_bytes_per_s"] > 0
    assert local["calibration"]["model"] == "gemma3-270m@1"
    assert local["calibration"]["decode_tokens_per_s"] > 0

    box = cli.json("hardware", "add", "gpu-box", *GPU_BOX)
    assert box["gpus"][0]["memory_bytes"] == 80_000_000_000
    listed = cli.json("hardware", "list")
    assert {p["name"] for p in listed} == {"local", "gpu-box"}

    real = cli.real(
        "recommend", "--task", "summarisation", "--languages", "de", "--context", "32000",
        "--licence", "commercial", "--hardware", "gpu-box", "--top", "3",
    )  # fmt: skip
    assert real.returncode == 0, real.stderr
    assert "Ranked for summarisation on gpu-box" in real.stdout
    assert "qwen2.5-3b: licence qwen-research does not allow commercial use" in real.stdout
    shortlist = cli.json(
        "recommend", "--task", "summarisation", "--languages", "de", "--context", "32000",
        "--licence", "commercial", "--hardware", "gpu-box",
    )  # fmt: skip
    ranked = {c["model"]: c for c in shortlist["ranked"]}
    excluded = {c["model"]: c for c in shortlist["excluded"]}
    assert ranked["llama-3.3-70b"]["placement"]["device"] == "gpu"
    assert "modelyard models import" in ranked["llama-3.3-70b"]["obtain"]
    assert excluded["qwen2.5-3b"]["exclusions"] == [
        "licence qwen-research does not allow commercial use"
    ]
    assert shortlist["ranked"][0]["rank"] == 1

    here = cli.json("recommend", "--task", "classification", "--hardware", "local")
    gemma = next(c for c in here["ranked"] if c["model"] == "gemma-3-270m")
    assert gemma["in_registry"] == ["gemma3-270m@1"] and gemma["obtain"] is None
    assert "calibrated by gemma3-270m@1" in gemma["placement"]["efficiency_source"]

    comparison = cli.json(
        "cost", "compare", "--api-spend-per-year", "80000", "--hardware", "gpu-box",
        "--model", "llama-3.3-70b", "--streams", "8",
    )  # fmt: skip
    assert comparison["api_monthly"] == pytest.approx(80000 / 12)
    assert isinstance(comparison["break_even_month"], int)
    assert comparison["machines"] >= 1
    text = cli(
        "cost", "compare", "--api-spend-per-year", "80000", "--hardware", "gpu-box",
        "--model", "llama-3.3-70b", "--streams", "8",
    ).stdout  # fmt: skip
    assert f"month {comparison['break_even_month']}" in text

    usage = tmp_path / "usage.jsonl"
    usage.write_text(
        '{"key": "k1", "team": "legal", "at": "2026-11-02T10:00:00", '
        '"prompt_tokens": 9000, "completion_tokens": 1000}\n'
    )
    html = tmp_path / "report.html"
    report = cli.json(
        "cost", "report", "--by", "team", "--since", "2026-11-01", "--until", "2026-11-08",
        "--hardware", "gpu-box", "--model", "llama-3.1-8b", "--usage", str(usage),
        "--html", str(html),
    )  # fmt: skip
    assert [line["name"] for line in report["lines"]] == ["legal"]
    assert report["idle"]["cost"] > 0
    assert "<svg" in html.read_text()
    # the real audit log of this home: no requests yet, so everything is idle capacity
    audit = cli.json(
        "cost", "report", "--since", "7d", "--hardware", "gpu-box", "--model", "llama-3.1-8b"
    )
    assert audit["lines"] == [] and audit["idle"]["share"] == 1.0

    shown = cli.json("models", "show", "gemma3-270m")
    assert shown["family"] == "Gemma 3 (gemma-3-270m)"


def test_clear_errors(cli: CLI) -> None:
    result = cli.real("recommend", "--hardware", "nope")
    assert result.returncode == 1
    assert "error: no hardware profile 'nope'" in result.stderr
    result = cli("hardware", "add", "x", "--gpus", "2xMYSTERY", "--ram-gb", "8", code=1)
    assert "unknown GPU" in str(result.exception)
    cli("hardware", "add", "bare", "--ram-gb", "16")
    result = cli("cost", "compare", "--api-spend-per-year", "80000", "--hardware", "bare", code=1)
    assert "no throughput for bare" in str(result.exception)
    result = cli(
        "cost", "compare", "--api-spend-per-year", "80000", "--hardware", "bare",
        "--model", "llama-3.3-70b", code=1,
    )  # fmt: skip
    assert "cannot run on bare" in str(result.exception)
    result = cli("recommend", "--hardware", "bare", "--licence", "free", code=1)
    assert "--licence must be" in str(result.exception)
    result = cli("cost", "report", "--hardware", "bare", "--since", "last tuesday", code=1)
    assert "not a date" in str(result.exception)
