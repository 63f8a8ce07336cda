"""``modelyard teams``: teams and their scopes (models, routes, expiry, PII policy, limits)."""

from __future__ import annotations

import typer

from modelyard.cli.output import print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.governance.scopes import Limits, Scope, parse_cache, parse_expiry, split_list
from modelyard.governance.teams import Team, Teams

app = typer.Typer(
    help="Teams: scopes, PII policy and budgets shared by their keys.", no_args_is_help=True
)


def _limits_text(limits: Limits) -> str:
    return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in limits.to_json().items())


def _rows(teams: list[Team]) -> list[list[object]]:
    return [
        [
            t.name,
            ",".join(t.scope.models) if t.scope.models is not None else "*",
            ",".join(t.scope.routes) if t.scope.routes is not None else "*",
            t.scope.pii or "",
            _limits_text(t.scope.limits),
            t.scope.expires_at.strftime("%Y-%m-%d %H:%M") if t.scope.expires_at else "",
        ]
        for t in teams
    ]


@app.command("create")
def create_command(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    models: str | None = typer.Option(None, help="Comma-separated models/aliases (default: all)."),
    routes: str | None = typer.Option(
        None, help="chat,completions,embeddings,admin (default: all)."
    ),
    expires: str | None = typer.Option(None, help="30d, 12h, 2w, or an ISO date."),
    pii: str | None = typer.Option(None, help="off, redact-logs, redact or block."),
    pilot: bool = typer.Option(
        False, "--pilot", help="May also use 'approved' versions (pilots), not only production."
    ),
    requests_per_minute: int | None = typer.Option(None, min=0),
    tokens_per_minute: int | None = typer.Option(None, min=0),
    tokens_per_day: int | None = typer.Option(None, min=0),
    tokens_per_month: int | None = typer.Option(None, min=0),
    cache: str | None = typer.Option(
        None, help="Response cache: on, off, or on with a TTL (90s, 10m, 2h, 1d)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a team."""
    runtime: Runtime = ctx.obj
    cache_on, cache_ttl_s = parse_cache(cache)
    scope = Scope(
        models=split_list(models),
        routes=split_list(routes),
        expires_at=parse_expiry(expires),
        pii=pii,
        limits=Limits(requests_per_minute, tokens_per_minute, tokens_per_day, tokens_per_month),
        pilot=pilot,
        cache=cache_on,
        cache_ttl_s=cache_ttl_s,
    )
    team = Teams(runtime.db, runtime.settings).create(
        name, scope, actor=runtime.acting("teams.manage")
    )
    if as_json:
        print_json(team.to_json())
    else:
        stderr().print(f"created team {team.name}")


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List teams and their scopes."""
    runtime: Runtime = ctx.obj
    teams = Teams(runtime.db, runtime.settings).list()
    if as_json:
        print_json([t.to_json() for t in teams])
    else:
        print_table(None, ["TEAM", "MODELS", "ROUTES", "PII", "LIMITS", "EXPIRES"], _rows(teams))


@app.command("rm")
def rm_command(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Delete a team that has no keys."""
    runtime: Runtime = ctx.obj
    Teams(runtime.db, runtime.settings).delete(name, actor=runtime.acting("teams.manage"))
    stderr().print(f"removed team {name}")
