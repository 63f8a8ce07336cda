"""The real ``modelyard`` command in a subprocess: promote, history, policy check, alias
rollout, advisories, cards, deploy export → apply on a fresh home → diff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelyard.cli.app import main
from tests.factories import write_tiny_gguf


class CLI:
    """The ``modelyard`` entry point (``main``: parsing, commands, error translation), run in
    this process so that each call does not pay the package's import time again."""

    def __init__(self, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
        self.home = home
        self.monkeypatch = monkeypatch
        self.capsys = capsys

    def __call__(self, *args: str, ok: bool = True) -> Result:
        self.monkeypatch.setenv("MODELYARD_HOME", str(self.home))
        self.monkeypatch.setenv("COLUMNS", "200")
        self.monkeypatch.delenv("MODELYARD_DATABASE_URL", raising=False)
        self.monkeypatch.delenv("MODELYARD_POLICY_FILE", raising=False)
        self.monkeypatch.setattr(sys, "argv", ["modelyard", *args])
        self.capsys.readouterr()
        code: int | str | None = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        captured = self.capsys.readouterr()
        result = Result(int(code or 0), captured.out, captured.err)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


POLICY = """
[policy]
licences = ["apache-2.0", "gemma"]

[policy.stages.approved]
licence = true
intake = true
four_eyes = true

[policy.stages.production]
evals = [{ suite = "clinic-qa", metric = "contains", min = 0.8 }]
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> CLI:
    monkeypatch.delenv("MODELYARD_OPERATOR_TOKEN", raising=False)
    return CLI(tmp_path / "home", monkeypatch, capsys)


def log_in_as(cli: CLI, name: str, roles: str = "approver") -> None:
    """Make operator ``name`` in the CLI's home and act as them from now on (a CLI login
    token in MODELYARD_OPERATOR_TOKEN, as ``modelyard login`` would keep in a file)."""
    from modelyard.config import Settings
    from modelyard.operators.accounts import OperatorAccounts
    from modelyard.operators.roles import parse_roles
    from modelyard.operators.sessions import OperatorSessions
    from modelyard.store.database import Database

    settings = Settings(home=cli.home)
    db = Database(settings.resolved_database_url)
    try:
        accounts = OperatorAccounts(db, settings)
        accounts.create(name, parse_roles(roles), password="a long test password", actor="tests")
        operator = accounts.login_password(name, "a long test password")
        token = OperatorSessions(db, settings).issue(operator, "cli").token
    finally:
        db.close()
    cli.monkeypatch.setenv("MODELYARD_OPERATOR_TOKEN", token)


OPEN_POLICY = "[policy]\n# no stage has gates: these tests are about aliases and deployments\n"


@pytest.mark.slow
def test_default_import_is_production_and_other_imports_are_registered(tmp_path: Path) -> None:
    """The installed command in a subprocess, on the real bundled model."""
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home")}
    env.pop("MODELYARD_DATABASE_URL", None)

    def run(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "modelyard", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(done.stdout)

    assert run("models", "import", "--default")["ref"] == "gemma3-270m@1"
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    assert run("models", "import", str(tiny), "--name", "tiny")["ref"] == "tiny@1"
    stages = {v["ref"]: v["stage"] for v in run("models", "list")}
    assert stages == {"gemma3-270m@1": "production", "tiny@1": "registered"}
    history = run("models", "history", "gemma3-270m")
    assert [h["to"] for h in history] == ["registered", "candidate", "approved", "production"]
    assert history[-1]["reason"] == "bundled model"


def test_policy_check_promote_four_eyes_and_card(cli: CLI, tmp_path: Path) -> None:
    cli("models", "import", str(write_tiny_gguf(tmp_path / "tiny.gguf")), "--name", "tiny")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    me = cli.json("models", "show", "tiny@1")["created_by"]
    check = cli(
        "policy", "check", "tiny@1", "--to", "production", "--policy", str(policy), ok=False
    )
    assert check.returncode == 1
    assert "four-eyes" in check.stdout and "failed" in check.stdout
    assert "missing" in check.stdout and "no finished eval run of suite clinic-qa" in check.stdout
    assert "promotion would be refused" in check.stderr
    refused = cli(
        "models", "promote", "tiny@1", "--to", "approved", "--reason", "self",
        "--policy", str(policy), ok=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert f"error: promotion of tiny@1 to approved refused by policy ({policy})" in refused.stderr
    assert f"{me} is not an operator who logged in" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert cli.json("models", "show", "tiny@1")["lifecycle"]["stage"] == "registered"
    # an admin's --actor is an impersonation: recorded, and never a second pair of eyes
    impersonated = cli(
        "models", "promote", "tiny@1", "--to", "approved", "--reason", "x",
        "--policy", str(policy), "--actor", "rev", ok=False,
    )  # fmt: skip
    assert "rev (impersonated by" in impersonated.stderr
    report = cli.json(
        "policy", "check", "tiny@1", "--to", "approved", "--policy", str(policy), "--as", "rev"
    )
    assert report["allowed"] is True
    log_in_as(cli, "rev", "approver,operator")
    promoted = cli.json(
        "models", "promote", "tiny@1", "--to", "approved", "--reason", "reviewed",
        "--policy", str(policy),
    )  # fmt: skip
    assert [t["to"] for t in promoted["transitions"]] == ["candidate", "approved"]
    bad = cli("models", "promote", "tiny@1", "--to", "retired", "--reason", "x", "--sunset",
              "tomorrow", ok=False)  # fmt: skip
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr
    note = cli("alias", "set", "pilot", "tiny@1").stderr
    assert "note: tiny@1 is approved; only production versions are served" in note
    card_path = tmp_path / "card.md"
    cli("models", "card", "tiny@1", "--intended-use", "Internal triage drafts only.",
        "-o", str(card_path))  # fmt: skip
    card = card_path.read_text()
    for heading in ("# Model card: tiny@1", "## Provenance", "## Intended use",
                    "## Evaluation results", "## Bias probes", "## Stage history"):  # fmt: skip
        assert heading in card
    assert "Internal triage drafts only." in card and "apache-2.0" in card
    assert "| registered | candidate | rev | reviewed |" in card


def test_alias_advisories_and_deploy_round_trip(cli: CLI, tmp_path: Path) -> None:
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    cli("models", "import", str(tiny), "--name", "tiny")
    cli("models", "import", str(write_tiny_gguf(tmp_path / "t2.gguf", context=128)), "--name",
        "tiny")  # fmt: skip
    open_policy = tmp_path / "open.toml"
    open_policy.write_text(OPEN_POLICY)
    for ref in ("tiny@1", "tiny@2"):
        cli("models", "promote", ref, "--to", "production", "--reason", "ok",
            "--policy", str(open_policy))  # fmt: skip
    cli("alias", "set", "chat", "tiny@1")
    shown = cli.json("alias", "set", "chat", "tiny@2", "--canary", "tiny@1", "--weight", "10")
    assert shown == {**shown, "target": "tiny@2", "canary": "tiny@1", "canary_weight": 10.0}
    assert "tiny@2 (90%) + canary tiny@1 (10%)" in cli("alias", "list").stdout
    assert cli.json("alias", "rollback", "chat")["target"] == "tiny@1"
    history = cli.json("alias", "show", "chat")["history"]
    assert [h["action"] for h in history] == ["set", "set", "rollback"]
    bad = cli("alias", "set", "chat", "tiny@2", "--canary", "tiny@1", "--weight", "0", ok=False)
    assert bad.returncode == 1 and "strictly between 0 and 100" in bad.stderr
    cli("advisories", "add", "tiny@2", "--id", "CVE-2026-7", "--severity", "high",
        "--action", "warn")  # fmt: skip
    wrong = cli("advisories", "add", "tiny@2", "--id", "CVE-2026-8", "--severity", "grave",
                "--action", "block", ok=False)  # fmt: skip
    assert wrong.returncode == 1 and "severity must be one of" in wrong.stderr
    assert [a["id"] for a in cli.json("advisories", "list")] == ["CVE-2026-7"]

    exported = tmp_path / "deployment.yaml"
    cli("deploy", "export", "-o", str(exported))
    elsewhere = CLI(tmp_path / "elsewhere", cli.monkeypatch, cli.capsys)
    missing = elsewhere("deploy", "apply", str(exported), ok=False)
    assert missing.returncode == 1 and "files not found" in missing.stderr
    applied = elsewhere.json("deploy", "apply", str(exported), "--from", str(cli.home))
    assert applied["registered"] == ["tiny@1", "tiny@2"]
    again = tmp_path / "again.yaml"
    elsewhere("deploy", "export", "-o", str(again))
    same = elsewhere("deploy", "diff", str(exported), str(again))
    assert same.stdout == "" and "no changes" in same.stderr
    cli("models", "promote", "tiny@1", "--to", "deprecated", "--reason", "old",
        "--sunset", "2027-06-30", "--replacement", "chat")  # fmt: skip
    changed = tmp_path / "changed.yaml"
    changed.write_text(cli("deploy", "export").stdout)
    lines = cli("deploy", "diff", str(exported), str(changed)).stdout.splitlines()
    assert "~ model tiny@1 stage: production → deprecated" in lines
    assert any(line.startswith("~ model tiny@1 sunset_at: None → 2027-06-30") for line in lines)
