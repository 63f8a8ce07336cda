"""``modelyard capacity`` end to end: the real command on benchmark files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.capacity.test_plan import bench_json
from tests.harness import CLI


def test_capacity_from_measurements_json_table_and_exit_code(tmp_path: Path) -> None:
    engine = tmp_path / "engine.json"
    engine.write_text(json.dumps(bench_json()))
    gateway = tmp_path / "gateway.json"
    gateway.write_text(json.dumps({"levels": [{"completed": 50, "requests_per_s": 250.0}]}))
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"per_second": 1200.0}))
    cli = CLI(tmp_path / "home")
    shape = ["--prompt-tokens", "200", "--output-tokens", "100"]
    files = ["--engine-bench", str(engine), "--gateway-bench", str(gateway)]
    audited = [*files, "--audit-bench", str(audit)]
    data = json.loads(cli("capacity", "--rps", "20", *shape, *audited, "--json").stdout)
    assert [p["count"] for p in data["parts"]] == [30, 1, 1]
    assert data["feasible"] is True
    table = cli("capacity", "--rps", "20", *shape, *files).stdout
    assert "engine replicas" in table and "not measured: pass --audit-bench" in table
    over = cli("capacity", "--rps", "700", *shape, *audited, ok=False)
    assert over.returncode == 1 and "OVER" in over.stdout
    missing = cli("capacity", "--rps", "20", *shape, ok=False)
    assert missing.returncode == 1 and "--engine-bench" in missing.stderr
