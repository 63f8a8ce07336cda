"""The ``modelyard`` command: wires the command groups and translates errors once."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from modelyard import __version__

COMMANDS: tuple[tuple[str, str, str, str], ...] = (
    (
        "run",
        "modelyard.cli.generate",
        "run_command",
        "Generate text from a model and stream it to the terminal.",
    ),
    (
        "serve",
        "modelyard.cli.serve",
        "serve_command",
        "Serve the OpenAI-compatible API (/v1), /healthz, /readyz and /metrics.",
    ),
    (
        "bench",
        "modelyard.cli.bench",
        "bench_command",
        "Measure requests/s, tokens/s, TTFT and inter-token latency at each concurrency.",
    ),
    (
        "capacity",
        "modelyard.cli.capacity",
        "capacity_command",
        "How many engine replicas and gateway processes a target load needs, from measurements.",
    ),
    (
        "recommend",
        "modelyard.cli.recommend",
        "recommend_command",
        "Rank models: memory fit, expected speed, licence, languages, task — with reasons.",
    ),
    ("models", "modelyard.cli.models", "app", "Import, list, show and remove models."),
    (
        "alias",
        "modelyard.cli.aliases",
        "app",
        "Point aliases (chat, summarise…) at model versions; canary splits and rollback.",
    ),
    ("policy", "modelyard.cli.policy", "app", "Check versions against the lifecycle policy."),
    (
        "approvals",
        "modelyard.cli.approvals",
        "app",
        "Four-eyes promotions: one operator proposes, another approves or rejects.",
    ),
    (
        "login",
        "modelyard.cli.login",
        "login_command",
        "Log in as an operator; later commands act (and are audited) in your name.",
    ),
    (
        "logout",
        "modelyard.cli.login",
        "logout_command",
        "End this OS user's operator login (the token is revoked, then forgotten).",
    ),
    (
        "whoami",
        "modelyard.cli.login",
        "whoami_command",
        "Who commands act as now: the logged-in operator, or the OS user (``os:NAME``).",
    ),
    (
        "operators",
        "modelyard.cli.operators",
        "app",
        "Operator accounts: who may change what (roles), passwords and TOTP.",
    ),
    (
        "advisories",
        "modelyard.cli.advisories",
        "app",
        "Security and quality advisories against versions.",
    ),
    ("deploy", "modelyard.cli.deploy", "app", "Deployment manifests: export, diff, apply."),
    (
        "endpoints",
        "modelyard.cli.endpoints",
        "app",
        "Which upstream hosts and networks remote endpoints may reach (admin only).",
    ),
    ("keys", "modelyard.cli.keys", "app", "API keys for the gateway (deny by default)."),
    (
        "batch",
        "modelyard.cli.batch",
        "app",
        "Submit JSONL files to the gateway's Batch API, follow them and fetch their results.",
    ),
    (
        "eval",
        "modelyard.cli.evaluate",
        "app",
        "Evaluate models on your own data; bias probes; compare runs.",
    ),
    (
        "pilot",
        "modelyard.cli.pilot",
        "app",
        "Pilot candidate models on your own data before committing to one.",
    ),
    ("audit", "modelyard.cli.audit", "app", "The tamper-evident audit log."),
    (
        "teams",
        "modelyard.cli.teams",
        "app",
        "Teams: scopes, PII policy and budgets shared by their keys.",
    ),
    ("store", "modelyard.cli.store", "app", "Check and tidy the content-addressed blob store."),
    (
        "hardware",
        "modelyard.cli.hardware",
        "app",
        "Detect this machine and keep profiles of machines (memory, speed, cost).",
    ),
    (
        "cost",
        "modelyard.cli.cost",
        "app",
        "What self-hosting costs: per 1M tokens, against an API, per team.",
    ),
    ("tune", "modelyard.cli.tune", "app", "Fine-tune models on your own data."),
    (
        "quantize",
        "modelyard.cli.quantize",
        "app",
        "Make a version at another level: `quantize NAME\\[@N] --type Q8_0 \\[--name NEW]`. "
        "Compare the levels: `quantize report NAME`.",
    ),
)
"""Each command: its name, the module and attribute that define it, and its one-line help.

The module is imported only when the command runs (or its own ``--help`` is asked for), so
``modelyard --help`` and each command pay only for the imports they use. The one-line help
is repeated here for the top-level listing; a test keeps it equal to the command's own."""


def load_command(name: str) -> Any:
    """The click command behind ``name``, importing its module now."""
    for command_name, module_name, attribute, _ in COMMANDS:
        if command_name == name:
            target = getattr(importlib.import_module(module_name), attribute)
            if isinstance(target, typer.Typer):
                return typer.main.get_group(target)
            single = typer.Typer()
            single.command(name)(target)
            return typer.main.get_command(single)
    raise KeyError(name)


class _LazyCommands(TyperGroup):
    """Lists the commands from :data:`COMMANDS` and imports one only to run it."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [name for name, *_ in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        for name, _, _, short in COMMANDS:
            if name == cmd_name:
                return TyperCommand(name, help=short, short_help=short)
        return None

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and command is not None:
            command = load_command(name)
        return name, command, rest


app = typer.Typer(
    cls=_LazyCommands,
    name="modelyard",
    help="Run open-weight AI models on your own hardware, under your organisation's control.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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
    from pydantic import ValidationError
    from rich.text import Text

    from modelyard.cli.output import stderr
    from modelyard.cli.runtime import Runtime
    from modelyard.config import Settings

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
    from rich.text import Text

    from modelyard.cli.output import stderr
    from modelyard.errors import ModelyardError

    try:
        app(prog_name="modelyard")
    except ModelyardError as exc:
        stderr().print(Text.assemble(("error: ", "red"), exc.message))
        sys.exit(exc.exit_code)
