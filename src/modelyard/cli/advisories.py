"""``modelyard advisories``: record advisories against versions; ``block`` stops serving."""

from __future__ import annotations

import typer

from modelyard.catalog.advisories import Advisories
from modelyard.cli.governed import ACTOR_OPTION, actor_of
from modelyard.cli.output import print_json, print_table, stderr
from modelyard.cli.runtime import Runtime

app = typer.Typer(help="Security and quality advisories against versions.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")


def _advisories(ctx: typer.Context) -> Advisories:
    runtime: Runtime = ctx.obj
    return Advisories(runtime.registry, runtime.settings)


@app.command("add")
def add_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N it applies to."),
    advisory_id: str = typer.Option(..., "--id", help="e.g. CVE-2026-12345."),
    severity: str = typer.Option(..., "--severity", help="low, medium, high or critical."),
    action: str = typer.Option(..., "--action", help="block (stop serving) or warn."),
    summary: str = typer.Option("", "--summary"),
    actor: str | None = ACTOR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Record an advisory; with --action block the version stops serving at once."""
    advisory = _advisories(ctx).add(
        ref,
        advisory_id,
        severity=severity,
        action=action,
        summary=summary,
        actor=actor_of(ctx, "advisories.change", actor),
    )
    if as_json:
        print_json(advisory.to_json())
    else:
        stderr().print(f"{advisory.id} on {advisory.ref}: {advisory.severity}, {advisory.action}")


@app.command("withdraw")
def withdraw_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N."),
    advisory_id: str = typer.Option(..., "--id"),
    actor: str | None = ACTOR_OPTION,
) -> None:
    """Withdraw an advisory (the version serves again if its stage allows)."""
    advisory = _advisories(ctx).withdraw(
        ref, advisory_id, actor=actor_of(ctx, "advisories.change", actor)
    )
    stderr().print(f"withdrew {advisory.id} on {advisory.ref}")


@app.command("list")
def list_command(
    ctx: typer.Context,
    ref: str | None = typer.Argument(None, help="Only this version."),
    include_withdrawn: bool = typer.Option(False, "--all", help="Include withdrawn ones."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List advisories."""
    found = _advisories(ctx).list(ref, include_withdrawn=include_withdrawn)
    if as_json:
        print_json([a.to_json() for a in found])
        return
    print_table(
        None,
        ["ID", "VERSION", "SEVERITY", "ACTION", "STATUS", "SUMMARY", "BY"],
        [
            [
                a.id,
                a.ref,
                a.severity,
                a.action,
                "active" if a.active else "withdrawn",
                a.summary,
                a.created_by,
            ]
            for a in found
        ],
    )
