"""``modelyard alias``: point movable names at model versions, split traffic, roll back."""

from __future__ import annotations

import typer

from modelyard.catalog.aliases import Aliases, AliasState
from modelyard.catalog.lifecycle import SERVED
from modelyard.cli.governed import ACTOR_OPTION, actor_of, lifecycle
from modelyard.cli.output import print_fields, print_json, print_table, stderr
from modelyard.cli.runtime import Runtime

app = typer.Typer(
    help="Point aliases (chat, summarise…) at model versions; canary splits and rollback.",
    no_args_is_help=True,
)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")


def _aliases(ctx: typer.Context) -> Aliases:
    runtime: Runtime = ctx.obj
    return Aliases(runtime.registry, runtime.settings)


def _target(state: AliasState) -> str:
    if state.canary is None or state.weight is None:
        return state.target
    return f"{state.target} ({100 - state.weight:g}%) + canary {state.canary} ({state.weight:g}%)"


@app.command("set")
def set_command(
    ctx: typer.Context,
    alias: str = typer.Argument(..., help="Alias name."),
    ref: str = typer.Argument(..., help="NAME or NAME@N to point at."),
    canary: str | None = typer.Option(
        None, "--canary", help="A second version that gets --weight percent of requests."
    ),
    weight: float | None = typer.Option(
        None, "--weight", help="Percent of requests for the canary (0 < w < 100)."
    ),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the alias history)."),
    actor: str | None = ACTOR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create or move an alias (atomic: the next request sees the new target)."""
    state = _aliases(ctx).set(
        alias,
        ref,
        canary=canary,
        weight=weight,
        actor=actor_of(ctx, "aliases.change", actor),
        reason=reason,
    )
    if as_json:
        print_json(state.to_json())
        return
    console = stderr()
    console.print(f"{state.name} → {_target(state)}")
    runtime: Runtime = ctx.obj
    stages = lifecycle(runtime).stages()
    for ref in [r for r in (state.target, state.canary) if r is not None]:
        if stages[ref].stage not in SERVED:
            console.print(
                f"[yellow]note: {ref} is {stages[ref].stage.value}; only production versions "
                "are served (approved ones to pilot keys)[/]"
            )


@app.command("show")
def show_command(
    ctx: typer.Context,
    alias: str = typer.Argument(..., help="Alias name."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show an alias's target, canary split and history."""
    state, events = _aliases(ctx).show(alias)
    if as_json:
        print_json({**state.to_json(), "history": [e.to_json() for e in events]})
        return
    print_fields([("alias", state.name), ("target", _target(state))])
    print_table(
        "history",
        ["#", "WHEN", "ACTION", "TARGET", "CANARY", "PREVIOUS", "ACTOR", "REASON"],
        [
            [
                e.id,
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.action,
                e.target,
                f"{e.canary} {e.weight:g}%" if e.canary and e.weight is not None else "",
                e.previous_target,
                e.actor,
                e.reason,
            ]
            for e in events
        ],
    )


@app.command("rollback")
def rollback_command(
    ctx: typer.Context,
    alias: str = typer.Argument(..., help="Alias name."),
    reason: str = typer.Option("", "--reason"),
    actor: str | None = ACTOR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Return an alias to its previous target (repeat to go further back)."""
    state = _aliases(ctx).rollback(
        alias, actor=actor_of(ctx, "aliases.change", actor), reason=reason
    )
    if as_json:
        print_json(state.to_json())
    else:
        stderr().print(f"{state.name} → {_target(state)} (rolled back)")


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List aliases and their targets."""
    states = _aliases(ctx).list()
    if as_json:
        print_json([s.to_json() for s in states])
        return
    print_table(
        None,
        ["ALIAS", "TARGET", "UPDATED"],
        [
            [s.name, _target(s), s.updated_at.strftime("%Y-%m-%d %H:%M") if s.updated_at else ""]
            for s in states
        ],
    )


@app.command("rm")
def rm_command(
    ctx: typer.Context,
    alias: str = typer.Argument(...),
    actor: str | None = ACTOR_OPTION,
) -> None:
    """Delete an alias (the versions stay)."""
    _aliases(ctx).remove(alias, actor=actor_of(ctx, "aliases.change", actor))
    stderr().print(f"removed alias {alias}")
