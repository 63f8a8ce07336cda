"""``modelyard deploy``: export what is served, diff two exports, reproduce one elsewhere."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from modelyard.atomic_write import write_text
from modelyard.cli.governed import ACTOR_OPTION, POLICY_OPTION, actor_of
from modelyard.cli.output import print_json, stderr
from modelyard.cli.runtime import Runtime
from modelyard.deploy.apply import apply_manifest, manifest_digest
from modelyard.deploy.diff import diff_manifests
from modelyard.deploy.manifest import build_manifest, dump_manifest, load_manifest
from modelyard.errors import InvalidInput
from modelyard.governance.policy import load_policy

app = typer.Typer(help="Deployment manifests: export, diff, apply.", no_args_is_help=True)


def _read(path: Path) -> str:
    if not path.is_file():
        raise InvalidInput(f"no such manifest: {path}")
    return path.read_text(encoding="utf-8")


@app.command("export")
def export_command(
    ctx: typer.Context,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here (not stdout)."),
    policy: Path | None = POLICY_OPTION,
) -> None:
    """Write every served alias/version with hashes, engines, library versions, policy, limits."""
    runtime: Runtime = ctx.obj
    manifest = build_manifest(
        runtime.registry, runtime.settings, load_policy(runtime.settings, policy)
    )
    text = dump_manifest(manifest)
    if output is None:
        sys.stdout.write(text)
    else:
        write_text(output, text)
        stderr().print(f"wrote {output}: {len(manifest['models'])} model(s)")


@app.command("diff")
def diff_command(
    before: Path = typer.Argument(..., help="The older manifest."),
    after: Path = typer.Argument(..., help="The newer manifest."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show what changed between two exports (models, aliases, runtime, policy, limits)."""
    changes = diff_manifests(
        load_manifest(_read(before), source=str(before)),
        load_manifest(_read(after), source=str(after)),
    )
    if as_json:
        print_json([c.to_json() for c in changes])
        return
    if not changes:
        stderr().print("no changes")
    for change in changes:
        sys.stdout.write(change.describe() + "\n")


@app.command("apply")
def apply_command(
    ctx: typer.Context,
    manifest_path: Path = typer.Argument(..., help="A manifest from `deploy export`."),
    sources: list[Path] = typer.Option(
        [], "--from", help="Where the model files are: another home, its blobs/, or a folder."
    ),
    actor: str | None = ACTOR_OPTION,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Reproduce a manifest here: same versions and bytes, stages, advisories and aliases."""
    runtime: Runtime = ctx.obj
    text = _read(manifest_path)
    manifest = load_manifest(text, source=str(manifest_path))
    result = apply_manifest(
        runtime.registry,
        manifest,
        sources=sources,
        actor=actor_of(ctx, "lifecycle.promote", actor),
        manifest_sha256=manifest_digest(text),
    )
    if as_json:
        print_json(result.to_json())
        return
    console = stderr()
    for ref in result.registered:
        console.print(f"registered {ref}")
    for line in result.staged:
        console.print(f"stage {line}")
    for name in result.aliases:
        console.print(f"alias {name}")
    console.print(
        f"applied {manifest_path}: {len(result.registered)} registered, {len(result.kept)} kept"
    )
