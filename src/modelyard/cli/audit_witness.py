"""``modelyard audit witness``: create the witness's key, serve it, ask it how it stands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from modelyard.audit.witness.client import SocketWitness
from modelyard.audit.witness.server import serve
from modelyard.audit.witness.signers import Pkcs11Config, init_witness
from modelyard.audit.witness.statements import fingerprint, public_pem
from modelyard.cli.output import print_json, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput

app = typer.Typer(
    help="The audit witness: holds the checkpoint key apart from the gateway.",
    no_args_is_help=True,
)


def _state_dir(runtime: Runtime, given: Path | None) -> Path:
    state_dir = given or runtime.settings.audit_witness_dir
    if state_dir is None:
        raise InvalidInput("no witness directory: pass --dir or set MODELYARD_AUDIT_WITNESS_DIR")
    home = runtime.settings.home.resolve()
    resolved = state_dir.resolve()
    if resolved == home or home in resolved.parents:
        raise InvalidInput("the witness directory must be outside MODELYARD_HOME")
    return state_dir


@app.command("init")
def init_command(
    ctx: typer.Context,
    state_dir: Path | None = typer.Option(
        None, "--dir", help="Default: MODELYARD_AUDIT_WITNESS_DIR."
    ),
    pkcs11_module: Path | None = typer.Option(
        None, "--pkcs11-module", help="A PKCS#11 library: the key is made on that token."
    ),
    token_label: str | None = typer.Option(None, "--token-label"),
    key_label: str = typer.Option("modelyard-audit", "--key-label"),
    pin_file: Path | None = typer.Option(None, "--pin-file", help="File holding the user PIN."),
    purge_min_age_days: float = typer.Option(
        1.0, help="The witness signs no purge of records younger than this."
    ),
) -> None:
    """Create the witness's key (a file, or on a PKCS#11 token); print the public key to pin."""
    runtime: Runtime = ctx.obj
    target = _state_dir(runtime, state_dir)
    pkcs11 = None
    if pkcs11_module is not None:
        if token_label is None or pin_file is None:
            raise InvalidInput("a PKCS#11 key needs --token-label and --pin-file")
        pkcs11 = Pkcs11Config(
            str(pkcs11_module.resolve()), token_label, key_label, str(pin_file.resolve())
        )
    public = init_witness(target, pkcs11=pkcs11, purge_min_age_days=purge_min_age_days)
    sys.stdout.write(public_pem(public))
    stderr().print(
        f"witness key {fingerprint(public)} in {target}; pin this public key outside the home "
        "(MODELYARD_AUDIT_PUBKEY) for `modelyard audit verify`",
        markup=False,
    )


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    state_dir: Path | None = typer.Option(
        None, "--dir", help="Default: MODELYARD_AUDIT_WITNESS_DIR."
    ),
    socket_path: Path | None = typer.Option(
        None, "--socket", help="Default: MODELYARD_AUDIT_WITNESS."
    ),
    user: str | None = typer.Option(
        None, help="When started as root, run as this user (default: MODELYARD_AUDIT_WITNESS_USER)."
    ),
    socket_group: str | None = typer.Option(
        None, help="Group allowed to connect (the gateway's); default: the witness user's."
    ),
    ready_file: Path | None = typer.Option(None, help="Written with the pid once serving."),
) -> None:
    """Serve the witness on a Unix socket until SIGTERM."""
    runtime: Runtime = ctx.obj
    target = _state_dir(runtime, state_dir)
    path = socket_path or runtime.settings.audit_witness
    if path is None:
        raise InvalidInput("no socket: pass --socket or set MODELYARD_AUDIT_WITNESS")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(
        target,
        path,
        user=user or runtime.settings.audit_witness_user,
        socket_group=socket_group,
        ready=ready_file,
    )


@app.command("status")
def status_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The witness's key and the last head it signed (MODELYARD_AUDIT_WITNESS)."""
    runtime: Runtime = ctx.obj
    settings = runtime.settings
    if settings.audit_witness is None:
        raise InvalidInput("no witness configured: set MODELYARD_AUDIT_WITNESS to its socket")
    info = SocketWitness(settings.audit_witness, settings.audit_witness_timeout_s).info()
    if as_json:
        print_json(info)
        return
    last = info.get("last")
    stderr().print(
        f"witness at {settings.audit_witness}: "
        + (f"last signed seq {last['seq']}" if last else "nothing signed yet")
        + f", {info.get('statements', 0)} statements",
        markup=False,
    )
    sys.stdout.write(str(info["public_key"]))
