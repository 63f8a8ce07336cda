"""The real ``modelyard`` command in a subprocess: output, --json, exit codes, error messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import write_tiny_gguf
from tests.harness import CLI


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "home")


@pytest.mark.slow
def test_import_list_show_rm(cli: CLI, tmp_path: Path) -> None:
    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    imported = json.loads(cli("models", "import", str(source), "--json").stdout)
    assert imported["ref"] == "tiny@1" and imported["created"] is True
    listed = json.loads(cli("models", "list", "--json").stdout)
    assert [v["ref"] for v in listed] == ["tiny@1"]
    table = cli("models", "list").stdout
    assert "tiny@1" in table and "llama" in table and "apache-2.0" in table
    shown = json.loads(cli("models", "show", "tiny@1", "--json").stdout)
    assert shown["metadata"]["context_length"] == 256
    assert "sha256:" in cli("models", "show", "tiny").stdout

    cli("alias", "set", "chat", "tiny@1")
    refused = cli("models", "rm", "tiny@1", ok=False)
    assert refused.returncode == 1
    assert "error: tiny@1 is the target of alias chat" in refused.stderr
    assert "Traceback" not in refused.stderr
    cli("alias", "rm", "chat")
    assert json.loads(cli("models", "rm", "tiny", "--json").stdout) == {"removed": ["tiny@1"]}
    assert json.loads(cli("models", "list", "--json").stdout) == []


@pytest.mark.slow
def test_bad_imports_exit_non_zero_with_a_message(cli: CLI, tmp_path: Path) -> None:
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04.")
    result = cli("models", "import", str(pickled), ok=False)
    assert result.returncode == 1
    assert "pickles" in result.stderr and "Traceback" not in result.stderr
    result = cli("models", "import", str(pickled), "--name", "../x", ok=False)
    assert result.returncode == 1 and "invalid model name" in result.stderr
    result = cli("models", "import", ok=False)
    assert result.returncode == 1 and "give one of a PATH, --default or --bundled" in result.stderr
    assert cli("models", "show", "ghost", ok=False).returncode == 1
    assert json.loads(cli("models", "list", "--json").stdout) == []


@pytest.mark.slow
def test_default_model_run_is_reproducible(cli: CLI) -> None:
    imported = json.loads(cli("models", "import", "--default", "--json").stdout)
    assert imported["ref"] == "gemma3-270m@1"
    again = json.loads(cli("models", "import", "--default", "--json").stdout)
    assert again["created"] is False
    args = [
        "run",
        "gemma3-270m",
        "The capital of France is",
        "--max-tokens",
        "8",
        "--temperature",
        "0",
        "--seed",
        "42",
    ]
    first = cli(*args).stdout
    second = cli(*args).stdout
    assert first.strip() and first == second


def _modelyard(home: Path, *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    """The command with stdin not a terminal (an empty pipe) and a chosen width."""
    env = {**os.environ, "MODELYARD_HOME": str(home), "COLUMNS": str(columns)}
    env.pop("MODELYARD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_audit_erase_without_a_terminal_says_why_and_how(cli: CLI) -> None:
    result = _modelyard(cli.home, "audit", "erase", "erin")
    assert result.returncode == 1
    assert "Aborted" not in result.stderr
    assert "no terminal to confirm" in result.stderr and "--yes" in result.stderr


def test_quantize_help_shows_the_type_option(cli: CLI) -> None:
    shown = cli("quantize", "--help").stdout
    assert "--type" in shown and "Q8_0" in shown and "report" in shown
    assert "NAME[@N]" in shown


@pytest.mark.slow
def test_importing_the_same_file_twice_needs_new_version(cli: CLI, tmp_path: Path) -> None:
    source = write_tiny_gguf(tmp_path / "tiny.gguf")
    cli("models", "import", str(source))
    again = cli("models", "import", str(source), ok=False)
    assert again.returncode == 1
    assert "tiny@1 already has these bytes" in again.stderr and "--new-version" in again.stderr
    assert [v["ref"] for v in json.loads(cli("models", "list", "--json").stdout)] == ["tiny@1"]
    cli("models", "import", str(source), "--name", "other")  # another name is another model
    second = json.loads(cli("models", "import", str(source), "--new-version", "--json").stdout)
    assert second["ref"] == "tiny@2" and second["created"] is True


@pytest.mark.slow
def test_models_list_keeps_long_names_whole_in_80_columns(cli: CLI, tmp_path: Path) -> None:
    name = "clinic-notes-summariser-for-the-night-shift"
    cli("models", "import", str(write_tiny_gguf(tmp_path / "t.gguf")), "--name", name)
    narrow = _modelyard(cli.home, "models", "list", columns=80)
    assert narrow.returncode == 0, narrow.stderr
    assert f"{name}@1" in narrow.stdout and "…" not in narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    assert "left out to fit 80 columns" in narrow.stderr
    wide = _modelyard(cli.home, "models", "list", columns=200)
    assert "CREATED" in wide.stdout and "left out" not in wide.stderr


@pytest.mark.slow
def test_run_prints_no_llama_cpp_log_lines(cli: CLI) -> None:
    cli("models", "import", "--default")
    result = cli("run", "gemma3-270m", "Hi", "--max-tokens", "2")
    for marker in ("llama_", "load_tensors", "print_info", "ggml_"):
        assert marker not in result.stdout and marker not in result.stderr
