"""``modelyard --help`` stays light: the command groups are imported only when one runs.

No timings are asserted; what is checked is which modules a start-up imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.cli.app import COMMANDS, load_command

HEAVY = ("torch", "transformers", "sentence_transformers", "llama_cpp", "fastapi", "uvicorn")


def _modules_after(home: Path, *args: str) -> set[str]:
    """The modules imported by ``modelyard ARGS`` run in a fresh interpreter."""
    script = (
        "import json, sys\n"
        "from modelyard.cli.app import app\n"
        "try:\n"
        f"    app({list(args)!r}, prog_name='modelyard')\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write('MODULES=' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    )
    env = {**os.environ, "MODELYARD_HOME": str(home), "COLUMNS": "200"}
    env.pop("MODELYARD_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("MODULES=")]
    return set(json.loads(line.removeprefix("MODULES=")))


def test_help_imports_no_command_group(tmp_path: Path) -> None:
    modules = _modules_after(tmp_path / "home", "--help")
    assert "modelyard.cli.app" in modules
    for heavy in (*HEAVY, "sqlalchemy", "alembic", "jinja2", "numpy"):
        assert heavy not in modules, heavy
    loaded_groups = {module for _, module, _, _ in COMMANDS} & modules
    assert loaded_groups == set()


@pytest.mark.parametrize("args", [("models", "--help"), ("models", "list")])
def test_read_only_commands_import_no_engine_or_server(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    modules = _modules_after(tmp_path / "home", *args)
    assert "modelyard.cli.models" in modules
    for heavy in HEAVY:
        assert heavy not in modules, heavy


@pytest.mark.parametrize(("name", "module", "attribute", "short"), COMMANDS)
def test_listed_help_is_the_commands_own(
    name: str, module: str, attribute: str, short: str
) -> None:
    command = load_command(name)
    assert command.help is not None
    own = command.help.strip().split("\n\n")[0].replace("\n", " ")
    assert short == own
