"""The CLI acts as a logged-in operator or as the OS user marked ``os:``; ``--actor`` is an
audited, admin-only impersonation; four-eyes through ``modelyard approvals`` end to end."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from modelyard.identity import current_user
from tests.factories import write_tiny_gguf
from tests.lifecycle.test_cli import CLI, Result

PASSWORD = "correct horse battery"


class OperatorCLI(CLI):
    """The in-process CLI, with a line of stdin (a password) when given."""

    def run(self, *args: str, stdin: str = "", ok: bool = True) -> Result:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return self(*args, ok=ok)

    def login(self, name: str) -> None:
        self.run("login", name, "--password-stdin", stdin=PASSWORD + "\n")

    def add(self, name: str, roles: str) -> None:
        self.run(
            "operators", "add", name, "--roles", roles, "--password-stdin", stdin=PASSWORD + "\n"
        )


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> OperatorCLI:
    monkeypatch.delenv("MODELYARD_OPERATOR_TOKEN", raising=False)
    return OperatorCLI(tmp_path / "home", monkeypatch, capsys)


def stage_of(cli: OperatorCLI, ref: str) -> str:
    return {v["ref"]: v["stage"] for v in cli.json("models", "list")}[ref]


def audit_events(cli: OperatorCLI) -> list[tuple[str, str, str]]:
    rows = cli.json("audit", "list", "--kind", "event", "--limit", "1000")
    return [(r["details"]["event"], r["actor"], r["target"]) for r in rows]


def test_os_user_is_marked_and_a_login_changes_who_acts(cli: OperatorCLI, tmp_path: Path) -> None:
    me = f"os:{current_user()}"
    assert cli.json("whoami")["actor"] == me
    cli.add("alice", "operator")
    cli.login("alice")
    token_file = cli.home / "operator-sessions"
    assert any(token_file.iterdir())
    assert all(p.stat().st_mode & 0o077 == 0 for p in token_file.iterdir())
    assert cli.json("whoami") == {
        "actor": "alice",
        "name": "alice",
        "method": "local",
        "roles": ["operator"],
        "authenticated": True,
    }
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    assert cli.json("models", "import", str(tiny), "--name", "tiny")["created_by"] == "alice"
    # an operator may not manage keys
    refused = cli("keys", "create", "ci", ok=False)
    assert refused.returncode == 1 and "needs role admin" in refused.stderr
    cli("logout")
    assert cli.json("whoami")["actor"] == me
    events = audit_events(cli)
    assert ("operator.create", me, "operator:alice") in events
    assert ("operator.login", "alice", "operator:alice") in events
    assert ("model.import", "alice", "tiny@1") in events
    assert ("operator.logout", "alice", "operator:alice") in events


def test_a_wrong_password_fails_and_is_audited(cli: OperatorCLI) -> None:
    cli.add("bob", "approver")
    failed = cli.run("login", "bob", "--password-stdin", stdin="nope\n", ok=False)
    assert failed.returncode == 1 and "wrong operator name, password or code" in failed.stderr
    assert ("operator.login_failed", "anonymous", "operator:bob") in audit_events(cli)


def test_actor_is_an_admin_only_impersonation(cli: OperatorCLI, tmp_path: Path) -> None:
    cli.add("alice", "operator")
    cli.add("root-admin", "admin")
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    cli("models", "import", str(tiny), "--name", "tiny")
    cli.login("alice")
    refused = cli("alias", "set", "chat", "tiny@1", "--actor", "bob", ok=False)
    assert "may not act in another operator's name" in refused.stderr
    cli.login("root-admin")
    cli("alias", "set", "chat", "tiny@1", "--actor", "bob")
    events = audit_events(cli)
    assert ("operator.impersonate", "root-admin", "operator:bob") in events
    assert ("alias.set", "bob (impersonated by root-admin)", "alias:chat") in events


def test_four_eyes_end_to_end_through_approvals(cli: OperatorCLI, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[policy.stages.production]\nfour_eyes = true\n")
    cli.add("alice", "operator")
    cli.add("bob", "approver")
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    cli("models", "import", str(tiny), "--name", "tiny")
    cli.login("alice")
    proposal = cli.json(
        "approvals", "propose", "tiny@1", "--to", "production", "--reason", "pilot passed"
    )
    # alice may not approve: her role forbids it, and so would four-eyes
    refused = cli("approvals", "approve", str(proposal["id"]), "--reason", "me", ok=False)
    assert refused.returncode == 1 and "needs role" in refused.stderr
    # the OS user (admin by role) still fails four-eyes: it is nobody who logged in
    cli("logout")
    os_try = cli(
        "approvals",
        "approve",
        str(proposal["id"]),
        "--reason",
        "x",
        "--policy",
        str(policy),
        ok=False,
    )
    assert "four-eyes" in os_try.stderr and "logged in" in os_try.stderr
    cli.login("bob")
    assert cli.json("approvals", "list")[0]["proposer"] == "alice"
    done = cli.json(
        "approvals", "approve", str(proposal["id"]), "--reason", "ok", "--policy", str(policy)
    )
    assert done["to"] == "production" and done["actor"] == "bob"
    assert stage_of(cli, "tiny@1") == "production"
    assert cli.json("approvals", "list") == []


def test_a_fresh_home_is_governed_by_default(cli: OperatorCLI, tmp_path: Path) -> None:
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    cli("models", "import", str(tiny), "--name", "tiny")
    policy = cli.home / "modelyard.toml"
    assert policy.is_file() and policy.read_text().startswith("# modelyard lifecycle policy")
    check = cli("policy", "check", "tiny@1", "--to", "production", "--json", ok=False)
    gates = {g["gate"]: g["status"] for g in json.loads(check.stdout)["gates"]}
    assert gates["four-eyes"] == "failed"  # the OS user is not a logged-in person
    assert {"licence", "intake", "trial_load", "eval_evidence", "bias:gender"} <= set(gates)
    policy.unlink()
    refused = cli("models", "promote", "tiny@1", "--to", "production", "--reason", "x", ok=False)
    assert "--override-no-policy" in refused.stderr
    cli(
        "models",
        "promote",
        "tiny@1",
        "--to",
        "production",
        "--reason",
        "x",
        "--override-no-policy",
    )
    assert stage_of(cli, "tiny@1") == "production"


def test_a_token_file_others_could_read_or_plant_is_refused(cli: OperatorCLI) -> None:
    cli.add("alice", "operator")
    cli.login("alice")
    (token,) = (cli.home / "operator-sessions").iterdir()
    token.chmod(0o644)
    refused = cli("whoami", ok=False)
    assert refused.returncode == 1 and "not this user's private login token" in refused.stderr
    token.chmod(0o600)
    assert cli.json("whoami")["actor"] == "alice"
