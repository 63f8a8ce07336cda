"""``modelyard store``: verify the blob store's integrity and collect its garbage."""

from __future__ import annotations

from dataclasses import asdict

import typer

from modelyard.cli.output import byte_progress, human_bytes, print_json, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import StoreFault
from modelyard.store.maintenance import collect_garbage, verify_blobs

app = typer.Typer(help="Check and tidy the content-addressed blob store.", no_args_is_help=True)


@app.command("verify")
def verify_command(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Re-hash every stored blob the registry references; exit 3 if any is corrupt or missing."""
    runtime: Runtime = ctx.obj
    referenced = runtime.registry.referenced_blobs()
    total = sum(
        runtime.blobs.path_for(s).stat().st_size
        for s in referenced
        if runtime.blobs.path_for(s).is_file()
    )
    with byte_progress(enabled=not as_json) as progress:
        result = verify_blobs(runtime.blobs, referenced, progress=progress("verifying", total))
    if as_json:
        print_json({**asdict(result), "ok": result.ok})
    else:
        stderr().print(
            f"checked {result.checked} blobs: {len(result.corrupt)} corrupt, "
            f"{len(result.missing)} missing"
        )
    if not result.ok:
        names = ", ".join(result.corrupt + result.missing)
        raise StoreFault(f"blob store integrity check failed: {names}")


@app.command("gc")
def gc_command(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Delete blobs no version references (left by imports interrupted after the copy)."""
    runtime: Runtime = ctx.obj
    result = collect_garbage(runtime.blobs, runtime.registry.referenced_blobs())
    if as_json:
        print_json(asdict(result))
    else:
        stderr().print(
            f"removed {len(result.removed_blobs)} unreferenced blobs "
            f"({human_bytes(result.freed_bytes)}) and {result.removed_temp_files} temp files"
        )
