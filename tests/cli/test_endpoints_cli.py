"""``modelyard endpoints allow|deny|list`` and ``models add-endpoint`` (in process, against
the stub upstream): the allow-list refuses what it does not name (also a name resolving
outside it, userinfo, a denied host), the API key is sealed and never shown, the identity is
recorded, and the lifecycle (gates, trial load, aliases, advisories) works on the version."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from modelyard.audit.query import Filter, iter_records
from modelyard.audit.verify import verify
from modelyard.config import Settings
from modelyard.operators.roles import ACTIONS, Role
from modelyard.store.database import Database
from tests.governance.clirun import Result, run_cli
from tests.operators.test_cli import OperatorCLI
from tests.remote_stub import StubConfig, StubServer, stub_server

SECRET = "sk-upstream-abad1dea5eed0000"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    config = StubConfig(
        key=SECRET,
        props={"chat_template": "{{ messages }}", "default_generation_settings": {"n_ctx": 256}},
    )
    with stub_server(config) as server:
        yield server


def cli(home: Path, *args: str, ok: bool = True) -> Result:
    return run_cli(home, *args, ok=ok)


def add(home: Path, url: str, *extra: str, ok: bool = True) -> Result:
    return cli(
        home,
        "models",
        "add-endpoint",
        "remote",
        "--url",
        url,
        "--served-model",
        "stub-model",
        "--api-key-env",
        "STUB_API_KEY",
        "--licence",
        "apache-2.0",
        *extra,
        ok=ok,
    )


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUB_API_KEY", SECRET)


def _db(home: Path) -> Database:
    return Database(Settings(home=home).resolved_database_url)


def test_the_allow_list_is_admin_data_and_every_change_is_audited(home: Path) -> None:
    assert json.loads(cli(home, "endpoints", "list", "--json").stdout) == []
    allowed = json.loads(cli(home, "endpoints", "allow", "10.20.0.0/16", "--json").stdout)
    assert allowed["rule"] == "10.20.0.0/16" and allowed["effect"] == "allow"
    cli(home, "endpoints", "allow", "VLLM.internal:8000")
    cli(home, "endpoints", "deny", "10.20.0.0/16")
    rules = {
        r["rule"]: r["effect"] for r in json.loads(cli(home, "endpoints", "list", "--json").stdout)
    }
    assert rules == {"10.20.0.0/16": "deny", "vllm.internal:8000": "allow"}
    assert "vllm.internal:8000" in cli(home, "endpoints", "list").stdout
    bad = cli(home, "endpoints", "allow", "not a host", ok=False)
    assert bad.returncode == 1 and "is not a host" in bad.stderr
    db = _db(home)
    try:
        events = [
            r["details"]["event"]
            for r in iter_records(db, Filter())
            if r["kind"] == "event" and r["details"]["event"].startswith("endpoint.")
        ]
        assert events == ["endpoint.allow", "endpoint.allow", "endpoint.deny"]
    finally:
        db.close()


def test_urls_outside_the_allow_list_are_refused_before_any_connection(
    home: Path, stub: StubServer
) -> None:
    refused = add(home, stub.url, ok=False)
    assert refused.returncode == 1 and "not in an allowed network" in refused.stderr
    cli(home, "endpoints", "allow", "localhost")  # the name, but not where it resolves to
    by_name = add(home, f"http://localhost:{stub.port}", ok=False)
    assert "resolves to" in by_name.stderr and "not in an allowed network" in by_name.stderr
    cli(home, "endpoints", "allow", "127.0.0.1")
    userinfo = add(home, f"http://user:pw@127.0.0.1:{stub.port}", ok=False)
    assert "user information" in userinfo.stderr and "pw" not in userinfo.stderr
    wrong = cli(
        home,
        "models",
        "add-endpoint",
        "remote",
        "--url",
        stub.url,
        "--served-model",
        "other",
        "--api-key-env",
        "STUB_API_KEY",
        ok=False,
    )
    assert "does not serve 'other'" in wrong.stderr and "stub-model" in wrong.stderr
    unkeyed = cli(
        home,
        "models",
        "add-endpoint",
        "remote",
        "--url",
        stub.url,
        "--served-model",
        "x",
        ok=False,
    )
    assert "refused the credentials" in unkeyed.stderr
    cli(home, "endpoints", "deny", "127.0.0.1")
    denied = add(home, stub.url, ok=False)
    assert "denied" in denied.stderr
    assert stub.completions() == []  # nothing was ever sent for generation
    assert [r.path for r in stub.received] == []  # GETs are not recorded; no POST either


def test_registration_records_identity_and_seals_the_key(home: Path, stub: StubServer) -> None:
    cli(home, "endpoints", "allow", "127.0.0.1")
    result = add(home, stub.url, "--json")
    assert SECRET not in result.stdout + result.stderr
    version = json.loads(result.stdout)
    assert version["ref"] == "remote@1" and version["format"] == "endpoint"
    assert version["origin"] == "remote" and version["files"] == []
    endpoint = version["metadata"]["endpoint"]
    assert endpoint["urls"] == [stub.url] and endpoint["served_model"] == "stub-model"
    identity = endpoint["identity"]
    assert identity["model_id"] == "stub-model" and identity["meta"]["n_params"] == 1000
    assert identity["weights_digest"] is None and "not exposed" in identity["weights_digest_source"]
    assert len(identity["chat_template_sha256"]) == 64
    assert version["metadata"]["context_length"] == 256
    assert version["metadata"]["license"] == "apache-2.0"
    again = add(home, stub.url, ok=False)
    assert again.returncode == 1 and "already registers this endpoint" in again.stderr

    db = _db(home)
    try:
        with db.engine.connect() as conn:
            (sealed,) = conn.execute(sa.text("SELECT sealed FROM endpoint_credentials")).one()
        assert SECRET not in sealed
        records = list(iter_records(db, Filter()))
        assert SECRET not in json.dumps(records, default=str)
        assert verify(db, Settings(home=home)).ok
    finally:
        db.close()
    key_file = home / "secrets" / "endpoints.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    shown = cli(home, "models", "show", "remote@1").stdout
    assert "remote@1" in shown and "endpoint" in shown and SECRET not in shown
    cli(home, "models", "rm", "remote@1")
    db = _db(home)
    try:
        with db.engine.connect() as conn:
            left = conn.execute(sa.text("SELECT count(*) FROM endpoint_credentials")).scalar()
        assert left == 0  # the sealed key went with its version
    finally:
        db.close()


def test_the_lifecycle_works_on_an_endpoint_version(home: Path, stub: StubServer) -> None:
    cli(home, "endpoints", "allow", "127.0.0.1")
    add(home, stub.url)
    promoted = json.loads(
        cli(
            home, "models", "promote", "remote@1", "--to", "approved", "--reason", "pilot", "--json"
        ).stdout
    )
    gates = {g["gate"]: g for g in promoted["gates"]}
    assert gates["licence"]["status"] == "passed"
    assert gates["intake"]["status"] == "passed" and "remote endpoint" in gates["intake"]["detail"]

    trial = json.loads(cli(home, "models", "trial-load", "remote@1", "--json").stdout)
    assert trial["ok"] is True and "generated 1 token" in trial["detail"]
    (sent,) = stub.completions()
    assert sent.body["max_tokens"] == 1 and sent.headers["Authorization"] == f"Bearer {SECRET}"
    refused = cli(home, "policy", "check", "remote@1", "--to", "production", "--json", ok=False)
    check = json.loads(refused.stdout)  # refused: no eval evidence, no second person
    statuses = {g["gate"]: g["status"] for g in check["gates"]}
    assert statuses["trial_load"] == "passed" and statuses["intake"] == "passed"

    cli(home, "alias", "set", "chat", "remote@1")
    cli(
        home,
        "advisories",
        "add",
        "remote@1",
        "--id",
        "ADV-1",
        "--severity",
        "low",
        "--action",
        "warn",
        "--summary",
        "beta",
    )
    listed = json.loads(cli(home, "models", "list", "--json").stdout)
    assert listed[0]["stage"] == "approved" and listed[0]["aliases"] == ["chat"]

    stub.config.fail_status = 500  # the upstream breaks: the trial load says so, exit 1
    failed = cli(home, "models", "trial-load", "remote@1", "--json", ok=False)
    assert failed.returncode == 1 and json.loads(failed.stdout)["ok"] is False


def test_only_an_admin_may_change_the_allow_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    assert ACTIONS["endpoints.manage"].roles == {Role.ADMIN}
    monkeypatch.delenv("MODELYARD_OPERATOR_TOKEN", raising=False)
    ops = OperatorCLI(tmp_path / "home", monkeypatch, capsys)
    ops.add("alice", "operator")
    ops.add("root-admin", "admin")
    ops.login("alice")
    refused = ops("endpoints", "allow", "10.0.0.0/8", ok=False)
    assert refused.returncode == 1 and "needs role admin" in refused.stderr
    assert "allow and deny the hosts and networks" in refused.stderr
    assert ops.json("endpoints", "list") == []
    ops.login("root-admin")
    ops("endpoints", "allow", "10.0.0.0/8")
    rows = ops.json("audit", "list", "--kind", "event", "--limit", "100")
    changes = [(r["details"]["event"], r["actor"]) for r in rows if r["target"].startswith("end")]
    assert changes == [("endpoint.allow", "root-admin")]


def test_bench_eval_and_pilot_run_through_the_endpoints_replicas(
    home: Path, stub: StubServer, tmp_path: Path
) -> None:
    cli(home, "endpoints", "allow", "127.0.0.1")
    add(home, stub.url)
    bench = json.loads(
        cli(
            home,
            *("bench", "--model", "remote", "--concurrency", "1,2", "--requests", "2"),
            *("--max-tokens", "3", "--prompt-tokens", "8", "--warmup", "0", "--json"),
        ).stdout
    )
    assert bench["target"] == "remote@1 (remote endpoint, 1 replica(s))"
    assert [lv["completed"] for lv in bench["levels"]] == [2, 2]
    sent = stub.completions()
    assert len(sent) == 4 and {r.path for r in sent} == {"/v1/completions"}
    assert all(r.headers["Authorization"] == f"Bearer {SECRET}" for r in sent)

    data = tmp_path / "rows.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "Greet me"}], "expected": "Hello"},
        {"input": "Say goodbye", "expected": "Goodbye"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = json.loads(
        cli(
            home,
            "eval",
            "run",
            "--model",
            "remote",
            "--data",
            str(data),
            "--metric",
            "contains",
            "--json",
        ).stdout
    )
    assert run["model"] == "remote@1" and run["score"] == 0.5 and run["status"] == "done"
    chat, raw = stub.completions()[4:]
    assert chat.body["messages"] == [{"role": "user", "content": "Greet me"}]  # as messages
    assert raw.path == "/v1/completions" and raw.body["prompt"] == "Say goodbye"

    scored = cli(
        home,
        "eval",
        "run",
        "--model",
        "remote",
        "--data",
        str(data),
        "--metric",
        "choice",
        ok=False,
    )
    assert scored.returncode == 1 and "remote endpoint" in scored.stderr
    assert "generation metric" in scored.stderr
    assert len(json.loads(cli(home, "eval", "list", "--json").stdout)) == 1  # nothing stored

    out = tmp_path / "pilot"
    cli(home, "pilot", "run", "--models", "remote", "--data", str(data), "--out", str(out))
    assert (out / "report.md").is_file() and "remote" in (out / "report.md").read_text()
    refused = cli(
        home,
        "pilot",
        "run",
        "--models",
        "remote",
        "--data",
        str(data),
        "--metric",
        "perplexity",
        "--out",
        str(out),
        ok=False,
    )
    assert "remote endpoint" in refused.stderr and "generation metric" in refused.stderr
