"""``modelyard hardware add``: data-sheet bandwidth and power, the default electricity price."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.errors import InvalidInput


def _run(home: Path, *args: str, electricity: str | None = None) -> Any:
    env = {
        "MODELYARD_HOME": str(home),
        "MODELYARD_DATABASE_URL": "",
        "MODELYARD_ELECTRICITY_PER_KWH": electricity,
    }
    return CliRunner().invoke(app, ["hardware", "add", *args], env=env)


def test_known_gpus_bring_bandwidth_and_power(tmp_path: Path) -> None:
    result = _run(tmp_path, "box", "--gpus", "2xL40S-48GB", "--ram-gb", "256", "--json")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert [g["bandwidth_bytes_per_s"] for g in profile["gpus"]] == [864e9, 864e9]
    assert profile["cost"]["power_watts"] == 700  # 2 x 350 W board power
    assert profile["cost"]["electricity_per_kwh"] == 0.25


def test_flags_override_the_data_sheet_and_the_setting(tmp_path: Path) -> None:
    result = _run(
        tmp_path, "box", "--gpus", "1xH100-80GB", "--ram-gb", "256", "--power-watts", "1200",
        "--gpu-bandwidth-gbs", "3000", "--electricity-per-kwh", "0", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["gpus"][0]["bandwidth_bytes_per_s"] == 3000e9
    assert profile["cost"]["power_watts"] == 1200
    assert profile["cost"]["electricity_per_kwh"] == 0
    other = _run(tmp_path, "cpu-box", "--ram-gb", "64", "--json", electricity="0.31")
    assert other.exit_code == 0, other.output
    cpu_only = json.loads(other.stdout)
    assert cpu_only["cost"]["electricity_per_kwh"] == 0.31
    assert cpu_only["cost"]["power_watts"] == 0  # no GPU data sheet to take it from


def test_unknown_gpus_are_refused_with_the_known_names(tmp_path: Path) -> None:
    result = _run(tmp_path, "box", "--gpus", "1xMYGPU-24GB", "--ram-gb", "64")
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput)
    assert "H100-80GB" in str(result.exception) and "--gpu-bandwidth-gbs" in str(result.exception)
    assert not (tmp_path / "hardware" / "box.json").exists()
    given = _run(
        tmp_path, "box", "--gpus", "1xMYGPU-24GB", "--gpu-bandwidth-gbs", "900", "--ram-gb", "64"
    )
    assert given.exit_code == 0, given.output
    lonely = _run(tmp_path, "nogpu", "--gpu-bandwidth-gbs", "900", "--ram-gb", "64")
    assert isinstance(lonely.exception, InvalidInput)
