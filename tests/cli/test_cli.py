"""The real ``modelyard`` command in a subprocess: output, --json, exit codes, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.factories import write_tiny_gguf
from tests.harness import CLI


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "home")


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


def test_bad_imports_exit_non_zero_with_a_message(cli: CLI, tmp_path: Path) -> None:
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04.")
    result = cli("models", "import", str(pickled), ok=False)
    assert result.returncode == 1
    assert "pickles" in result.stderr and "Traceback" not in result.stderr
    result = cli("models", "import", str(pickled), "--name", "../x", ok=False)
    assert result.returncode == 1 and "invalid model name" in result.stderr
    result = cli("models", "import", ok=False)
    assert result.returncode == 1 and "either a PATH or --default" in result.stderr
    assert cli("models", "show", "ghost", ok=False).returncode == 1
    assert json.loads(cli("models", "list", "--json").stdout) == []


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
