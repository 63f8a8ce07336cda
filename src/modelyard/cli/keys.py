"""``modelyard keys``: create, list and revoke API keys (the secret is shown once)."""

from __future__ import annotations

import typer

from modelyard.cli.output import print_json, print_table, stderr, stdout
from modelyard.cli.runtime import Runtime
from modelyard.governance.key_admin import create_scoped_key, describe_keys
from modelyard.governance.keys import KeyStore
from modelyard.governance.scopes import Limits, Scope, parse_cache, parse_expiry, split_list

app = typer.Typer(help="API keys for the gateway (deny by default).", no_args_is_help=True)


def _store(ctx: typer.Context) -> KeyStore:
    runtime: Runtime = ctx.obj
    return KeyStore(runtime.db, runtime.settings)


@app.command("create")
def create_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for the key (who or what uses it)."),
    admin: bool = typer.Option(False, "--admin", help="May read /metrics and admin routes."),
    team: str | None = typer.Option(None, help="The team the key belongs to."),
    models: str | None = typer.Option(None, help="Comma-separated models/aliases (default: all)."),
    routes: str | None = typer.Option(None, help="chat,completions,embeddings (default: all)."),
    expires: str | None = typer.Option(None, help="30d, 12h, 2w, or an ISO date."),
    requests_per_minute: int | None = typer.Option(None, min=0),
    tokens_per_minute: int | None = typer.Option(None, min=0),
    tokens_per_day: int | None = typer.Option(None, min=0),
    tokens_per_month: int | None = typer.Option(None, min=0),
    pii: str | None = typer.Option(None, help="off, redact-logs, redact or block."),
    pilot: bool = typer.Option(
        False, "--pilot", help="May also use 'approved' versions (pilots), not only production."
    ),
    cache: str | None = typer.Option(
        None, help="Response cache: on, off, or on with a TTL (90s, 10m, 2h, 1d)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a key and print it once: it is stored only as a hash."""
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
    user = runtime.acting("keys.manage")
    scoped = create_scoped_key(
        runtime.db,
        runtime.settings,
        name,
        admin=admin,
        team=team,
        scope=scope,
        created_by=user,
        actor=user,
    )
    record, plaintext = scoped.key, scoped.plaintext
    if as_json:
        print_json(scoped.to_json(with_secret=True))
        return
    stdout().print(plaintext, markup=False, highlight=False)
    stderr().print(
        f"created {'admin ' if admin else ''}key {record.name!r}; "
        "this is the only time it is shown: store it now."
    )


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List keys (names, prefixes, state, team, PII policy; never secrets)."""
    runtime: Runtime = ctx.obj
    keys = _store(ctx).list()
    described = {d["name"]: d for d in describe_keys(runtime.db, runtime.settings)}
    if as_json:
        print_json([described[k.name] for k in keys])
        return
    print_table(
        None,
        ["NAME", "PREFIX", "ADMIN", "STATE", "TEAM", "PII", "CREATED", "LAST USED"],
        [
            [
                k.name,
                f"my-{k.id}-…",
                "yes" if k.admin else "",
                "active" if k.active else "revoked",
                described[k.name]["team"],
                described[k.name]["pii"],
                k.created_at.strftime("%Y-%m-%d %H:%M"),
                k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "",
            ]
            for k in keys
        ],
    )


@app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Revoke a key: the gateway refuses it from the next request on."""
    record = _store(ctx).revoke(name, actor=ctx.obj.acting("keys.manage"))
    if as_json:
        print_json(record.to_json())
    else:
        stderr().print(f"revoked key {record.name!r}")
