"""``modelyard audit`` and ``modelyard teams`` through the real command in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from modelyard.audit import AuditLog
from modelyard.config import Settings
from modelyard.store.database import Database
from tests.audit.entries import request_entry
from tests.governance.clirun import run_cli as _cli


def test_real_command_exit_codes(tmp_path: Path) -> None:
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home")}
    env.pop("MODELYARD_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "audit", "show", "7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr.strip()) == (1, "error: no audit record 7")


def test_teams_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _cli(
        home,
        "teams",
        "create",
        "research",
        "--models",
        "chat,gemma3-270m",
        "--pii",
        "redact",
        "--tokens-per-day",
        "1000",
        "--expires",
        "30d",
    )
    listed = json.loads(_cli(home, "teams", "list", "--json").stdout)
    assert listed[0]["name"] == "research" and listed[0]["models"] == ["chat", "gemma3-270m"]
    assert listed[0]["limits"] == {"tokens_per_day": 1000}
    assert "tokens per day: 1000" in _cli(home, "teams", "list").stdout
    bad = _cli(home, "teams", "create", "x", "--pii", "scramble", ok=False)
    assert bad.returncode == 1 and "unknown PII policy" in bad.stderr
    dup = _cli(home, "teams", "create", "research", ok=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    _cli(home, "teams", "rm", "research")
    assert json.loads(_cli(home, "teams", "list", "--json").stdout) == []


def test_audit_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    log = AuditLog(db, settings)
    for n in range(3):
        log.append(request_entry(n, subject="erin"))
    log.close()
    assert "audit log OK: 3 records" in _cli(home, "audit", "verify").stderr
    listed = json.loads(_cli(home, "audit", "list", "--json", "--since", "1h").stdout)
    assert [r["seq"] for r in listed] == [3, 2, 1]
    assert "gemma3-270m@1" in _cli(home, "audit", "list").stdout
    assert json.loads(_cli(home, "audit", "show", "2", "--json").stdout)["prompt"] == (
        "prompt number 1"
    )
    out = tmp_path / "audit.csv"
    _cli(home, "audit", "export", "--format", "csv", "--output", str(out))
    with out.open() as handle:
        assert [row["seq"] for row in csv.DictReader(handle)] == ["1", "2", "3"]
    lines = _cli(home, "audit", "export", "--format", "jsonl").stdout.splitlines()
    assert json.loads(lines[0])["response"] == "answer number 0"
    usage = json.loads(_cli(home, "audit", "usage", "--by", "team", "--json").stdout)
    assert usage == [
        {
            "group": "research",
            "requests": 3,
            "prompt_tokens": 33,
            "completion_tokens": 15,
            "total_tokens": 48,
            "cache_hits": 0,
            "cache_hit_tokens": 0,
            "cache_hit_charged_tokens": 0,
            "charged_tokens": 48,
        }
    ]
    _cli(home, "audit", "erase", "erin", "--yes")
    exported = _cli(home, "audit", "export").stdout
    assert "prompt number" not in exported and "[erased]" in exported
    assert _cli(home, "audit", "verify").returncode == 0
    none_due = _cli(home, "audit", "purge", "--days", "30")
    assert "nothing older than 30 days" in none_due.stderr
    assert _cli(home, "audit", "purge", ok=False).returncode == 1
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_records SET prompt_tokens = 0 WHERE seq = 2"))
    failed = _cli(home, "audit", "verify", ok=False)
    assert failed.returncode == 1 and "record 2 was edited" in failed.stderr
    assert json.loads(_cli(home, "audit", "verify", "--json", ok=False).stdout)["problem_seq"] == 2
    assert _cli(home, "audit", "export", "--format", "xml", ok=False).returncode == 1
    db.close()
