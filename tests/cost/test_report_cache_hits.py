"""``modelyard cost report`` from an audit log with response-cache hits: served tokens shown,
hits priced at what they were charged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.config import Settings
from modelyard.store.database import Database
from tests.cost.records import append_requests

GPU_BOX = (
    "--gpus", "1xH100-80GB", "--ram-gb", "256", "--bandwidth-gbs", "200",
    "--price", "40000", "--lifetime-years", "4", "--power-watts", "1100",
)  # fmt: skip


def test_report_prices_cache_hits_at_their_charged_tokens(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    try:
        append_requests(
            db,
            settings,
            [
                ("legal", 900, 100, {"cache": "miss"}),
                ("legal", 900, 100, {"cache": "hit", "charged_tokens": 100}),
                ("sales", 900, 100, {}),
            ],
        )
    finally:
        db.close()
    env = {"MODELYARD_HOME": str(settings.home), "COLUMNS": "200", "MODELYARD_DATABASE_URL": ""}
    runner = CliRunner()
    added = runner.invoke(app, ["hardware", "add", "gpu-box", *GPU_BOX], env=env)
    assert added.exit_code == 0, added.output
    report = ["cost", "report", "--since", "1d", "--hardware", "gpu-box", "--model", "llama-3.1-8b"]
    shown = runner.invoke(app, report, env=env)
    assert shown.exit_code == 0, (shown.output, shown.exception)
    assert "CACHE HITS" in shown.stdout and "PRICED TOKENS" in shown.stdout
    assert "cache hits are priced at the tokens they were charged" in shown.stderr
    data = json.loads(runner.invoke(app, [*report, "--json"], env=env).stdout)
    lines = {line["name"]: line for line in data["lines"]}
    assert lines["legal"]["prompt_tokens"] == 1800 and lines["legal"]["cache_hits"] == 1
    assert lines["legal"]["charged_tokens"] == 1100 and lines["sales"]["charged_tokens"] == 1000
    assert lines["legal"]["cost"] == pytest.approx(lines["sales"]["cost"] * 1.1)
