"""``modelyard policy``: explain what a stage transition requires, gate by gate."""

from __future__ import annotations

from pathlib import Path

import typer

from modelyard.cli.governed import POLICY_OPTION, lifecycle
from modelyard.cli.output import print_json, print_table, stderr
from modelyard.cli.runtime import Runtime

app = typer.Typer(help="Check versions against the lifecycle policy.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
STATUS_STYLE = {"passed": "green", "failed": "red", "missing": "yellow"}


@app.command("check")
def check_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N."),
    to: str = typer.Option(..., "--to", help="The stage it would move to."),
    policy: Path | None = POLICY_OPTION,
    actor: str | None = typer.Option(
        None, "--as", help="Check as this approver would be checked (default: you)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Explain every gate: passed, failed (why) or missing evidence. Exit 1 when refused."""
    runtime: Runtime = ctx.obj
    service = lifecycle(runtime, policy)
    report = service.check(ref, to, actor=actor.strip() if actor else runtime.operator.actor)
    if as_json:
        print_json(report.to_json())
    else:
        source = report.policy_source or "no policy file: no gates"
        stderr().print(
            f"{report.ref}: {report.current} → {report.target} "
            f"(via {' → '.join(report.path)}), policy: {source}"
        )
        print_table(
            None,
            ["GATE", "STAGE", "STATUS", "DETAIL"],
            [
                [r.gate, r.stage, f"[{STATUS_STYLE[r.status]}]{r.status}[/]", r.detail]
                for r in report.results
            ],
        )
        verdict = "allowed" if report.allowed else "[red]refused[/]"
        stderr().print(f"promotion would be {verdict}")
    if not report.allowed:
        raise typer.Exit(1)


@app.command("show")
def show_command(
    ctx: typer.Context, policy: Path | None = POLICY_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Print the policy in force (after validation) and where it comes from."""
    runtime: Runtime = ctx.obj
    loaded = lifecycle(runtime, policy).policy
    if not as_json:
        stderr().print(f"policy: {loaded.source or 'none (no gates)'}")
    print_json(loaded.to_json())
