"""``modelyard eval``: bad input is a clear error with exit 1, and nothing is stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import write_tiny_gguf


def modelyard(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELYARD_HOME": str(home), "COLUMNS": "200"}
    env.pop("MODELYARD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_eval_errors_exit_1_and_store_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert (
        modelyard(home, "models", "import", str(write_tiny_gguf(tmp_path / "t.gguf"))).returncode
        == 0
    )
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps({"input": "q", "expected": "a"}) + "\n" + "{broken\n")
    bad_row = modelyard(
        home, "eval", "run", "--model", "t", "--data", str(data), "--metric", "exact"
    )
    assert bad_row.returncode == 1 and "rows.jsonl:2: not valid JSON" in bad_row.stderr
    missing = modelyard(home, "eval", "show", "no-such-run")
    assert missing.returncode == 1 and "no evaluation run" in missing.stderr
    assert "Traceback" not in bad_row.stderr + missing.stderr
    assert json.loads(modelyard(home, "eval", "list", "--json").stdout) == []
