"""``modelyard endpoints``: the allow-list of upstream hosts and networks; and
``modelyard models add-endpoint`` (registered in :mod:`modelyard.cli.models`)."""

from __future__ import annotations

import os

import typer

from modelyard.cli.output import print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput

HELP = "Which upstream hosts and networks remote endpoints may reach (admin only)."
ADMIN_ACTION = "endpoints.manage"
"""Changing the allow-list is an admin's: it decides where the gateway may connect."""

app = typer.Typer(help=HELP, no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
RULE_ARGUMENT = typer.Argument(
    ..., help="HOST, HOST:PORT, an IP address (ADDRESS:PORT, [V6]:PORT) or a network (10.0.0.0/8)."
)


def _runtime(ctx: typer.Context) -> Runtime:
    runtime: Runtime = ctx.obj
    return runtime


def _set(ctx: typer.Context, rule: str, effect: str, as_json: bool) -> None:
    from modelyard.engines.endpoint_store import EndpointRules

    runtime = _runtime(ctx)
    actor = runtime.acting(ADMIN_ACTION)
    stored = EndpointRules(runtime.db, runtime.settings).set(
        rule, "deny" if effect == "deny" else "allow", actor=actor
    )
    if as_json:
        print_json(stored.to_json())
        return
    stderr().print(f"{stored.effect} [bold]{stored.rule}[/]")


@app.command("allow")
def allow_command(
    ctx: typer.Context, rule: str = RULE_ARGUMENT, as_json: bool = JSON_OPTION
) -> None:
    """Allow upstream URLs on a host or network. A host name also needs the network it
    resolves to allowed: every resolved address is checked."""
    _set(ctx, rule, "allow", as_json)


@app.command("deny")
def deny_command(
    ctx: typer.Context, rule: str = RULE_ARGUMENT, as_json: bool = JSON_OPTION
) -> None:
    """Deny a host or network (deny rules win over allow rules; replaces an allow of the
    same entry). Serving gateways refuse it within MODELYARD_ENDPOINT_RULES_REFRESH_S."""
    _set(ctx, rule, "deny", as_json)


@app.command("list")
def list_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List the allow-list's rules."""
    from modelyard.engines.endpoint_store import EndpointRules

    runtime = _runtime(ctx)
    rules = EndpointRules(runtime.db, runtime.settings).list()
    if as_json:
        print_json([r.to_json() for r in rules])
        return
    print_table(
        None,
        ["RULE", "EFFECT", "BY", "SINCE"],
        [[r.rule, r.effect, r.created_by, r.created_at.strftime("%Y-%m-%d %H:%M")] for r in rules],
    )


def add_endpoint_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name for the endpoint version."),
    urls: list[str] = typer.Option(
        ..., "--url", help="Upstream base URL (http[s]://host:port); repeat for replicas."
    ),
    served_model: str = typer.Option(
        ..., "--served-model", help="The model name the upstream serves (its /v1/models id)."
    ),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Environment variable holding the upstream's API key."
    ),
    licence: str | None = typer.Option(None, "--licence", help="Licence id (e.g. apache-2.0)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register an OpenAI-compatible upstream (vLLM, llama-server, Ollama, TGI…) as a new
    version of NAME: URLs checked against the allow-list, identity probed, API key sealed."""
    from modelyard.engines.endpoint_registration import EndpointRequest, register_endpoint

    runtime = _runtime(ctx)
    secret = None
    if api_key_env is not None:
        secret = os.environ.get(api_key_env)
        if not secret:
            raise InvalidInput(f"the environment variable {api_key_env} is not set or empty")
    version = register_endpoint(
        runtime.registry,
        runtime.settings,
        EndpointRequest(name, tuple(urls), served_model, secret, licence),
        actor=runtime.acting("catalog.change"),
    )
    if as_json:
        print_json(version.to_json())
        return
    identity = version.metadata["endpoint"]["identity"]
    stderr().print(
        f"registered [bold]{version.ref}[/] → {served_model} at {len(urls)} replica(s); "
        f"identity sha256:{version.digest[:12]}, weights digest: "
        f"{identity.get('weights_digest') or 'not exposed'}"
    )
