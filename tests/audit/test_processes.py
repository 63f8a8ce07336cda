"""Several OS processes append to one PostgreSQL audit log (as gateway replicas do): one
chain that verifies, and every append that returned survives a ``kill -9`` of its process.

Both run ``bench/audit_bench.py`` (scratch schema and home, dropped afterwards) with few
records; no speed is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench" / "audit_bench.py"


def _bench(*args: str) -> dict[str, Any]:
    paths = [str(BENCH.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = subprocess.run(
        [sys.executable, str(BENCH), "--database-url", POSTGRES_ADMIN_URL, "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    assert result.returncode == (0 if report["ok"] else 1), result.stderr[-3000:]
    return report


def test_four_processes_append_one_chain_that_verifies() -> None:
    report = _bench("--processes", "4", "--threads", "4", "--records", "320")
    assert report["store"].startswith("postgresql")
    assert report["errors"] == []
    assert report["appends"] == 320
    assert report["verify_ok"], report["verify_problem"]
    assert report["verify_records"] == 320


def test_appends_that_returned_survive_a_killed_process() -> None:
    report = _bench("--processes", "4", "--threads", "4", "--records", "800", "--kill-one")
    # killed once a quarter of its 200 appends had returned
    assert report["killed_pid"] is not None and report["returned_by_killed"] >= 50
    assert report["missing"] == []  # every append a caller saw return is in the log
    assert report["returned"] <= report["stored"] == report["verify_records"]
    assert report["verify_ok"], report["verify_problem"]
