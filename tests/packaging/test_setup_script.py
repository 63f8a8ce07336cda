"""deploy/docker/modelyard-setup.sh (the compose `setup` service, the chart's init container)
against a stand-in `modelyard` that records what it is asked; and deploy/docker/bundled_gguf.py
(the engine's model file) for real."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from modelyard.intake.bundled import bundled_model

DOCKER = Path(__file__).resolve().parents[2] / "deploy" / "docker"
SETUP = DOCKER / "modelyard-setup.sh"
SERVED_QWEN = ("--served-model", "qwen")

FAKE_CLI = """
import json, os, sys, time
from pathlib import Path

state = Path(os.environ["FAKE_STATE"])
args = sys.argv[1:]
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps(args) + "\\n")

def load(name, default):
    path = state / name
    return json.loads(path.read_text()) if path.exists() else default

def save(name, value):
    (state / name).write_text(json.dumps(value))

if args[:2] == ["keys", "list"]:
    keys = load("keys.json", [])
    time.sleep(float(os.environ.get("FAKE_LIST_DELAY", "0")))  # widens a create race
    print(json.dumps(keys))
elif args[:2] == ["keys", "create"]:
    save("keys.json", load("keys.json", []) + [{"name": args[2], "active": True}])
    print("my-1-plaintext")
elif args[:2] == ["models", "show"]:
    sys.exit(0 if args[2] in load("registered.json", []) else 1)
elif args[:2] == ["endpoints", "allow"]:
    code = int(os.environ.get("FAKE_ALLOW_EXIT", "0"))
    allowed = load("allowed.json", [])
    if code == 0 and args[2] in allowed:
        code = 1
    save("allowed.json", allowed + [args[2]])
    sys.exit(code)
elif args[:2] == ["models", "add-endpoint"]:
    if "--api-key-env" in args:
        variable = args[args.index("--api-key-env") + 1]
        save("received_key.json", os.environ[variable])
    save("registered.json", load("registered.json", []) + [args[2]])
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir, state, home = tmp_path / "bin", tmp_path / "state", tmp_path / "home"
    for folder in (bin_dir, state, home):
        folder.mkdir()
    fake = bin_dir / "modelyard"
    fake.write_text(f"#!{sys.executable}\n{FAKE_CLI}")
    fake.chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "MODELYARD_HOME": str(home),
        "FAKE_STATE": str(state),
        "MODELYARD_SETUP_ENDPOINTS": "gemma-engine,http://engine:8080,gemma3-270m,ENGINE_API_KEY",
        "MODELYARD_SETUP_ALLOW": "172.28.1.0/24",
        "ENGINE_API_KEY": "engine-key-7c1",
    }


def run_setup(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SETUP)], env={**env, **extra}, capture_output=True, text=True, timeout=60
    )


def calls(env: dict[str, str]) -> list[list[str]]:
    lines = (Path(env["FAKE_STATE"]) / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def state(env: dict[str, str], name: str) -> object:
    return json.loads((Path(env["FAKE_STATE"]) / name).read_text())


def test_first_run_then_nothing_more(env: dict[str, str]) -> None:
    first = run_setup(env)
    assert first.returncode == 0, first.stderr
    assert "my-1-plaintext" in first.stdout  # the first admin key, shown once
    assert state(env, "keys.json") == [{"name": "admin", "active": True}]
    assert ["models", "import", "--bundled"] in calls(env)
    allowed = [c[2] for c in calls(env) if c[:2] == ["endpoints", "allow"]]
    assert allowed == ["172.28.1.0/24", "engine:8080"]  # the network, then the name
    assert [
        "models",
        "add-endpoint",
        "gemma-engine",
        "--url",
        "http://engine:8080",
        "--served-model",
        "gemma3-270m",
        "--api-key-env",
        "ENGINE_API_KEY",
    ] in calls(env)
    assert state(env, "received_key.json") == "engine-key-7c1"
    assert "engine-key-7c1" not in first.stdout + first.stderr

    again = run_setup(env)
    assert again.returncode == 0, again.stderr
    assert len(state(env, "keys.json")) == 1  # type: ignore[arg-type]
    assert state(env, "registered.json") == ["gemma-engine"]
    assert "already registered" in again.stderr
    # nothing re-allowed once registered: an admin's later `endpoints deny` stays
    assert [c for c in calls(env) if c[:2] == ["endpoints", "allow"]] == [
        ["endpoints", "allow", rule] for rule in allowed
    ]


def test_replicas_sharing_the_home_create_one_admin_key(env: dict[str, str]) -> None:
    quiet = {**env, "MODELYARD_SETUP_ENDPOINTS": "", "FAKE_LIST_DELAY": "0.3"}
    procs = [
        subprocess.Popen(["sh", str(SETUP)], env=quiet, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    assert state(env, "keys.json") == [{"name": "admin", "active": True}]


def test_an_allow_list_entry_already_there_is_fine_a_fault_is_not(env: dict[str, str]) -> None:
    (Path(env["FAKE_STATE"]) / "allowed.json").write_text('["engine:8080"]')
    assert run_setup(env).returncode == 0
    (Path(env["FAKE_STATE"]) / "registered.json").unlink()
    failed = run_setup(env, FAKE_ALLOW_EXIT="3")
    assert failed.returncode == 3
    assert not (Path(env["FAKE_STATE"]) / "registered.json").exists()  # nothing registered


def test_options(env: dict[str, str]) -> None:
    result = run_setup(
        env,
        MODELYARD_SETUP_BUNDLED="0",
        MODELYARD_SETUP_ADMIN_KEY="",
        MODELYARD_SETUP_ENDPOINTS="plain,https://vllm.internal/v1,qwen",
        MODELYARD_SETUP_ALLOW="",
    )
    assert result.returncode == 0, result.stderr
    assert calls(env) == [
        ["models", "show", "plain", "--json"],
        ["endpoints", "allow", "vllm.internal:443"],
        ["models", "add-endpoint", "plain", "--url", "https://vllm.internal/v1", *SERVED_QWEN],
    ]
    bad = run_setup(env, MODELYARD_SETUP_ENDPOINTS="name-only,http://x")
    assert bad.returncode == 2 and "NAME,URL,SERVED_MODEL" in bad.stderr


def load_bundled_gguf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bundled_gguf", DOCKER / "bundled_gguf.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_gguf_writes_the_checked_file_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = load_bundled_gguf()
    spec = bundled_model("smollm2-135m")
    assert tool.main(["smollm2-135m", str(tmp_path / "models")]) == 0
    target = tmp_path / "models" / spec.file_name
    assert tool._digest(target) == spec.sha256
    assert not os.stat(target).st_mode & 0o222  # read-only
    assert tool.main(["smollm2-135m", str(tmp_path / "models")]) == 0
    assert "already there" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a GGUF"):
        tool.main(["minilm", str(tmp_path)])
    with pytest.raises(SystemExit, match="no bundled model"):
        tool.main(["nope", str(tmp_path)])


def test_bundled_gguf_refuses_bytes_that_do_not_match(tmp_path: Path) -> None:
    tool = load_bundled_gguf()
    chunk = tmp_path / "part00"
    chunk.write_bytes(b"GGUF not really")
    target = tmp_path / "model.gguf"
    with pytest.raises(SystemExit, match="SHA-256"):
        tool._join((chunk,), target, "0" * 64)
    assert list(tmp_path.iterdir()) == [chunk]  # nothing half-written left behind
