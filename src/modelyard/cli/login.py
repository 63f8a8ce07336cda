"""``modelyard login`` / ``logout`` / ``whoami``: act as an authenticated operator.

A local account logs in with its password (and TOTP code when enrolled); with OIDC
configured, ``--sso`` uses the provider's device flow (open a URL, enter a code). The token
is kept where only this OS user can read it (``operators/cli_session.py``); commands that
change state then record the operator instead of ``os:USER``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

import typer

from modelyard.cli.output import print_json, stderr, stdout
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from modelyard.operators.accounts import OperatorAccounts
    from modelyard.operators.principal import Operator


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput(
            "no terminal to ask for the password: pass --password-stdin and pipe it in"
        )
    return str(typer.prompt("password", hide_input=True))


def login_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Operator name (a local account)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
    totp: str | None = typer.Option(None, "--totp", help="The TOTP code, when enrolled."),
    sso: bool = typer.Option(
        False, "--sso", help="Log in through the organisation's OIDC provider (device flow)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Log in as an operator; later commands act (and are audited) in your name."""
    from modelyard.operators.accounts import OperatorAccounts
    from modelyard.operators.cli_session import save_token
    from modelyard.operators.sessions import OperatorSessions

    runtime: Runtime = ctx.obj
    accounts = OperatorAccounts(runtime.db, runtime.settings)
    if sso:
        operator = _sso_login(runtime, accounts)
    else:
        if not name:
            raise InvalidInput("give the operator name: modelyard login NAME (or --sso)")
        password = _read_password(password_stdin)
        operator = accounts.login_password(name, password, totp=totp, via="cli")
    issued = OperatorSessions(runtime.db, runtime.settings).issue(operator, "cli")
    path = save_token(runtime.settings, issued.token)
    if as_json:
        print_json(
            {
                "operator": operator.name,
                "roles": sorted(r.value for r in operator.roles),
                "expires_at": issued.expires_at.isoformat(),
                "token_file": str(path),
            }
        )
        return
    roles = ", ".join(sorted(r.value for r in operator.roles))
    stdout().print(
        f"logged in as {operator.name} ({roles}) until "
        f"{issued.expires_at:%Y-%m-%d %H:%M} UTC; token kept in {path}"
    )


def _sso_login(runtime: Runtime, accounts: OperatorAccounts) -> Operator:
    from modelyard.operators.oidc import OidcClient, OidcConfig

    config = OidcConfig.from_settings(runtime.settings)
    if config is None:
        raise InvalidInput("single sign-on is not configured (MODELYARD_OIDC_ISSUER)")
    if runtime.settings.oidc_cli_client_id:
        config = dataclasses.replace(
            config, client_id=runtime.settings.oidc_cli_client_id, client_secret=None
        )
    login = OidcClient(config)
    device = login.start_device()
    stderr().print(
        f"open {device.verification_uri_complete or device.verification_uri} "
        f"and enter the code [bold]{device.user_code}[/]"
    )
    identity = login.poll_device(device)
    return accounts.login_oidc(
        identity.subject, identity.username, identity.roles, issuer=identity.issuer
    )


def logout_command(ctx: typer.Context) -> None:
    """End this OS user's operator login (the token is revoked, then forgotten)."""
    from modelyard.operators.cli_session import forget_token, saved_token
    from modelyard.operators.sessions import OperatorSessions

    runtime: Runtime = ctx.obj
    token = saved_token(runtime.settings)
    if token is None:
        stdout().print("not logged in")
        return
    try:
        OperatorSessions(runtime.db, runtime.settings).revoke(token)
        message = "logged out"
    except NotFound:
        message = "the login had ended already; its token is forgotten"
    forget_token(runtime.settings)
    stdout().print(message)


def whoami_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Who commands act as now: the logged-in operator, or the OS user (``os:NAME``)."""
    runtime: Runtime = ctx.obj
    operator = runtime.operator
    roles = sorted(r.value for r in operator.roles)
    if as_json:
        print_json(
            {
                "actor": operator.actor,
                "name": operator.name,
                "method": operator.method,
                "roles": roles,
                "authenticated": operator.authenticated,
            }
        )
        return
    note = (
        ""
        if operator.authenticated
        else " — not logged in: acting as the OS user (never counts for four-eyes)"
    )
    stdout().print(f"{operator.actor} ({', '.join(roles)}){note}")
