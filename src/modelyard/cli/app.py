"""The ``modelyard`` command: wires the command groups and translates errors once."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from rich.text import Text

from modelyard import __version__
from modelyard.cli import advisories, aliases, deploy, models, policy
from modelyard.cli import audit as audit_cli
from modelyard.cli import cost as cost_cli
from modelyard.cli import evaluate as evaluate_cli
from modelyard.cli import hardware as hardware_cli
from modelyard.cli import keys as keys_cli
from modelyard.cli import pilot as pilot_cli
from modelyard.cli import quantize as quantize_cli
from modelyard.cli import store as store_cli
from modelyard.cli import teams as teams_cli
from modelyard.cli import tune as tune_cli
from modelyard.cli.bench import bench_command
from modelyard.cli.generate import run_command
from modelyard.cli.output import stderr
from modelyard.cli.recommend import recommend_command
from modelyard.cli.runtime import Runtime
from modelyard.cli.serve import serve_command
from modelyard.config import Settings
from modelyard.errors import ModelyardError

app = typer.Typer(
    name="modelyard",
    help="Run open-weight AI models on your own hardware, under your organisation's control.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models.app, name="models")
app.add_typer(aliases.app, name="alias")
app.add_typer(policy.app, name="policy")
app.add_typer(advisories.app, name="advisories")
app.add_typer(deploy.app, name="deploy")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(evaluate_cli.app, name="eval")
app.add_typer(pilot_cli.app, name="pilot")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(teams_cli.app, name="teams")
app.add_typer(store_cli.app, name="store")
app.command("run")(run_command)
app.command("serve")(serve_command)
app.command("bench")(bench_command)
app.add_typer(hardware_cli.app, name="hardware")
app.add_typer(cost_cli.app, name="cost")
app.command("recommend")(recommend_command)
app.add_typer(tune_cli.app, name="tune")
app.add_typer(quantize_cli.app, name="quantize")


def _version(value: bool) -> None:
    if value:
        print(f"modelyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        stderr().print(Text.assemble(("error: ", "red"), f"invalid MODELYARD_* setting: {exc}"))
        raise typer.Exit(1) from exc
    runtime = Runtime(settings)
    ctx.obj = runtime
    ctx.call_on_close(runtime.close)


def main() -> None:
    """Entry point: Typer handles usage errors; modelyard's own errors are translated here."""
    try:
        app(prog_name="modelyard")
    except ModelyardError as exc:
        stderr().print(Text.assemble(("error: ", "red"), exc.message))
        sys.exit(exc.exit_code)
