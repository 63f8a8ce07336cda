"""``modelyard operators``: local operator accounts, their roles, passwords and TOTP."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from modelyard.cli.output import print_json, print_table, stdout
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput

if TYPE_CHECKING:
    from modelyard.operators.accounts import OperatorAccounts

app = typer.Typer(
    help="Operator accounts: who may change what (roles), passwords and TOTP.",
    no_args_is_help=True,
)
ROLES_HELP = "Comma-separated: viewer, operator, approver, auditor, admin."


def _accounts(ctx: typer.Context) -> OperatorAccounts:
    from modelyard.operators.accounts import OperatorAccounts

    runtime: Runtime = ctx.obj
    return OperatorAccounts(runtime.db, runtime.settings)


def _password(password_stdin: bool, *, confirm: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to ask for the password: pass --password-stdin")
    return str(typer.prompt("new password", hide_input=True, confirmation_prompt=confirm))


@app.command("add")
def add_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Login name (lower-case letters, digits, . _ @ -)."),
    roles: str = typer.Option(..., "--roles", help=ROLES_HELP),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from the first line of stdin."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Create a local operator account (admin only)."""
    from modelyard.operators.roles import parse_roles

    runtime: Runtime = ctx.obj
    wanted = parse_roles(roles)
    actor = runtime.acting("operators.manage")
    account = _accounts(ctx).create(
        name, wanted, password=_password(password_stdin, confirm=True), actor=actor
    )
    if as_json:
        print_json(account.to_json())
        return
    stdout().print(f"operator {account.name} created ({', '.join(sorted(wanted))})")


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Operators, their roles and how they log in."""
    runtime: Runtime = ctx.obj
    runtime.acting("catalog.read")
    accounts = _accounts(ctx).list()
    if as_json:
        print_json([a.to_json() for a in accounts])
        return
    print_table(
        None,
        ["name", "method", "roles", "totp", "state", "last login"],
        [
            [
                a.name,
                a.method,
                ",".join(sorted(r.value for r in a.roles)),
                "yes" if a.totp else "",
                "disabled" if a.disabled else "active",
                f"{a.last_login_at:%Y-%m-%d %H:%M}" if a.last_login_at else "never",
            ]
            for a in accounts
        ],
    )


@app.command("set")
def set_command(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    roles: str | None = typer.Option(None, "--roles", help=ROLES_HELP),
    disable: bool = typer.Option(False, "--disable", help="Disable (ends every session)."),
    enable: bool = typer.Option(False, "--enable", help="Enable again."),
) -> None:
    """Change an operator's roles, or disable / enable the account (admin only)."""
    from modelyard.operators.roles import parse_roles

    if disable and enable:
        raise InvalidInput("--disable and --enable exclude each other")
    runtime: Runtime = ctx.obj
    actor = runtime.acting("operators.manage")
    account = _accounts(ctx).update(
        name,
        actor=actor,
        roles=parse_roles(roles) if roles is not None else None,
        disabled=True if disable else (False if enable else None),
    )
    state = "disabled" if account.disabled else "active"
    stdout().print(f"{account.name}: {', '.join(sorted(account.roles))}, {state}")


@app.command("passwd")
def passwd_command(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    password_stdin: bool = typer.Option(False, "--password-stdin"),
) -> None:
    """Set an operator's password (admin, or the operator themselves)."""
    runtime: Runtime = ctx.obj
    operator = runtime.operator
    if operator.name == name and operator.authenticated:
        actor = operator.actor
    else:
        actor = runtime.acting("operators.manage")
    _accounts(ctx).set_password(name, _password(password_stdin, confirm=True), actor=actor)
    stdout().print(f"password of {name} set")


@app.command("totp")
def totp_command(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    remove: bool = typer.Option(False, "--remove", help="Remove TOTP instead of enrolling."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Enrol TOTP (prints the secret and otpauth:// URI once) or remove it."""
    runtime: Runtime = ctx.obj
    operator = runtime.operator
    own = operator.name == name and operator.authenticated
    actor = operator.actor if own else runtime.acting("operators.manage")
    if remove:
        _accounts(ctx).remove_totp(name, actor=actor)
        stdout().print(f"TOTP removed for {name}")
        return
    enrolment = _accounts(ctx).enrol_totp(name, actor=actor)
    if as_json:
        print_json({"name": name, "secret": enrolment.secret, "uri": enrolment.uri})
        return
    stdout().print(f"secret: {enrolment.secret}\nuri:    {enrolment.uri}")
    stdout().print("add it to an authenticator app now: it is not shown again")
