"""Running the ``modelyard`` command in process, errors translated as ``main()`` does."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.errors import ModelyardError


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(home: Path, *args: str, ok: bool = True) -> Result:
    """The command in process (fast); errors translated as ``main()`` does."""
    env = {"MODELYARD_HOME": str(home), "COLUMNS": "200", "MODELYARD_DATABASE_URL": ""}
    outcome = CliRunner().invoke(app, list(args), env=env)
    error = outcome.exception
    if isinstance(error, ModelyardError):
        result = Result(error.exit_code, outcome.stdout, outcome.stderr + f"error: {error.message}")
    elif error is not None and not isinstance(error, SystemExit):
        raise error
    else:
        result = Result(outcome.exit_code, outcome.stdout, outcome.stderr)
    if ok:
        assert result.returncode == 0, result.stderr
    return result
