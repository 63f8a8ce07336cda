"""``modelyard alias``: point movable names at model versions."""

from __future__ import annotations

import typer

from modelyard.cli.output import print_json, print_table, stderr
from modelyard.cli.runtime import Runtime

app = typer.Typer(help="Point aliases (chat, summarise…) at model versions.", no_args_is_help=True)


@app.command("set")
def set_command(
    ctx: typer.Context,
    alias: str = typer.Argument(..., help="Alias name."),
    ref: str = typer.Argument(..., help="NAME or NAME@N to point at."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create or move an alias (atomic)."""
    runtime: Runtime = ctx.obj
    result = runtime.registry.set_alias(alias, ref)
    if as_json:
        print_json(result.to_json())
    else:
        stderr().print(f"{result.name} → {result.target}")


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List aliases and their targets."""
    runtime: Runtime = ctx.obj
    aliases = runtime.registry.list_aliases()
    if as_json:
        print_json([a.to_json() for a in aliases])
    else:
        print_table(
            None,
            ["ALIAS", "TARGET", "UPDATED"],
            [[a.name, a.target, a.updated_at.strftime("%Y-%m-%d %H:%M")] for a in aliases],
        )


@app.command("rm")
def rm_command(ctx: typer.Context, alias: str = typer.Argument(...)) -> None:
    """Delete an alias (the version stays)."""
    runtime: Runtime = ctx.obj
    runtime.registry.delete_alias(alias)
    stderr().print(f"removed alias {alias}")
