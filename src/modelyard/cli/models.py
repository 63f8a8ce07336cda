"""``modelyard models``: import, list, show and remove model versions; sign and verify them;
trial-load them in a sandboxed engine worker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from modelyard.atomic_write import write_text
from modelyard.catalog.records import ModelVersion
from modelyard.cli.endpoints import add_endpoint_command
from modelyard.cli.governed import (
    ACTOR_OPTION,
    POLICY_OPTION,
    actor_of,
    lifecycle,
    parse_day,
)
from modelyard.cli.output import (
    byte_progress,
    human_bytes,
    human_count,
    print_fields,
    print_json,
    print_table,
    stderr,
)
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput

app = typer.Typer(help="Import, list, show and remove models.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")


def _runtime(ctx: typer.Context) -> Runtime:
    runtime: Runtime = ctx.obj
    return runtime


@app.command("import")
def import_command(
    ctx: typer.Context,
    path: Path | None = typer.Argument(None, help="A .gguf file or a safetensors model directory."),
    name: str | None = typer.Option(None, "--name", help="Model name (default: from the file)."),
    default: bool = typer.Option(
        False, "--default", help="Import the bundled default model (Gemma 3 270M) alone."
    ),
    bundled: bool = typer.Option(
        False,
        "--bundled",
        help="Import the bundled models (gemma3-270m, smollm2-135m, minilm) not yet registered.",
    ),
    new_version: bool = typer.Option(
        False,
        "--new-version",
        help="Make a new version even when the name already has one with the same bytes.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Import a model into the store: verified, hashed, refused if unsafe. The same file
    twice under one name is refused unless --new-version. Bundled models are placed in
    production; a bundled model already registered is left as it is."""
    from modelyard.intake.bundled import import_bundled
    from modelyard.intake.default_model import DEFAULT_MODEL_NAME
    from modelyard.intake.importer import import_path

    runtime = _runtime(ctx)
    if sum((default, bundled, path is not None)) != 1:
        raise InvalidInput("give one of a PATH, --default or --bundled")
    if (default or bundled) and (name is not None or new_version):
        raise InvalidInput("--name and --new-version apply to a PATH, not to bundled models")
    with byte_progress(enabled=not as_json) as progress:
        if path is None:
            names = (DEFAULT_MODEL_NAME,) if default else None
            results = import_bundled(
                runtime.registry, runtime.settings, progress=progress, names=names
            )
        else:
            version = import_path(
                path,
                runtime.registry,
                runtime.settings,
                name=name,
                created_by=_runtime(ctx).acting("catalog.change"),
                progress=progress,
                new_version=new_version,
            )
            results = [(version, True)]
    if as_json:
        rows = [{**version.to_json(), "created": created} for version, created in results]
        print_json(rows if bundled else rows[0])
        return
    for version, created in results:
        verb = "imported" if created else "already registered:"
        stderr().print(f"{verb} [bold]{version.ref}[/] sha256:{version.digest[:12]}")


@app.command("list")
def list_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only the versions of this model."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List model versions."""
    versions = _runtime(ctx).registry.list_versions(name)
    stages = lifecycle(_runtime(ctx)).stages()
    if as_json:
        print_json([{**v.to_json(), "stage": stages[v.ref].stage.value} for v in versions])
        return
    print_table(
        None,
        [
            "MODEL",
            "STAGE",
            "FORMAT",
            "ARCH",
            "PARAMS",
            "QUANT",
            "SIZE",
            "LICENCE",
            "ALIASES",
            "CREATED",
        ],
        [
            [
                v.ref,
                stages[v.ref].stage.value,
                v.format,
                v.metadata.get("architecture"),
                human_count(v.metadata.get("parameters")),
                v.metadata.get("quantization"),
                human_bytes(v.size_bytes),
                v.metadata.get("license"),
                ",".join(v.aliases),
                v.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for v in versions
        ],
        drop=(9, 8, 7, 4, 3, 2),
    )


def _fields(v: ModelVersion) -> list[tuple[str, Any]]:
    meta = v.metadata
    return [
        ("model", v.ref),
        ("digest", f"sha256:{v.digest}"),
        ("format", v.format),
        ("architecture", meta.get("architecture")),
        ("parameters", f"{meta.get('parameters'):,}" if meta.get("parameters") else None),
        ("context length", meta.get("context_length")),
        ("quantization", meta.get("quantization")),
        ("size", f"{human_bytes(v.size_bytes)} ({v.size_bytes:,} bytes)"),
        ("tokenizer", meta.get("tokenizer")),
        ("chat template", "yes" if meta.get("chat_template") else "none"),
        ("licence", meta.get("license")),
        ("origin", v.origin),
        ("parent", v.parent),
        ("source", v.source_path),
        ("created by", v.created_by),
        ("created at", v.created_at.isoformat(timespec="seconds")),
        ("aliases", ", ".join(v.aliases) or None),
        ("files", "\n".join(f"{f.path}  {human_bytes(f.size_bytes)}" for f in v.files)),
    ]


@app.command("show")
def show_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME (newest version) or NAME@N."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one version: metadata, lineage, files."""
    from modelyard.advisor.matching import family_of
    from modelyard.catalog.advisories import Advisories, load_refusals
    from modelyard.catalog.signing import Signatures
    from modelyard.engines.workers import read_status

    runtime = _runtime(ctx)
    version, info = lifecycle(runtime).stage(ref)
    family = family_of(version.metadata)  # the advisor's knowledge-base match
    worker = read_status(runtime.settings.run_dir, version.digest)
    refusals = load_refusals(Advisories(runtime.registry).list(version.ref))
    signatures = Signatures(runtime.registry, runtime.settings).list(version.ref)
    if as_json:
        print_json(
            {
                **version.to_json(),
                "lifecycle": info.to_json(),
                "family": family,
                "worker": worker,
                "load_refused": [a.to_json() for a in refusals],
                "signatures": [s.to_json() for s in signatures],
            }
        )
    else:
        sunset = f" (sunset {info.sunset_at:%Y-%m-%d})" if info.sunset_at else ""
        print_fields(
            [
                *_fields(version),
                ("stage", f"{info.stage.value}{sunset}"),
                ("family", family or "unknown"),
                ("engine worker", _worker_line(worker)),
                ("load refused", "\n".join(f"{a.id}: {a.summary}" for a in refusals) or None),
                (
                    "signatures",
                    "\n".join(
                        f"key {s.key_sha256[:12]} by {s.signed_by} {s.created_at:%Y-%m-%d %H:%M}"
                        for s in signatures
                    )
                    or "none",
                ),
            ]
        )


def _worker_line(worker: dict[str, Any] | None) -> str:
    """The last state a gateway recorded for this version's engine worker."""
    if worker is None:
        return "never started"
    line = str(worker.get("state"))
    if worker.get("pid"):
        line += f" (pid {worker['pid']})"
    if worker.get("restarts"):
        line += f", {worker['restarts']} restarts"
    if worker.get("error"):
        line += f": {worker['error']}"
    return line


@app.command("rm")
def rm_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME (newest version) or NAME@N."),
    all_versions: bool = typer.Option(False, "--all", help="Remove every version of NAME."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove a version (refused while an alias points at it); frees blobs no longer used."""
    removed = _runtime(ctx).registry.remove(
        ref, all_versions=all_versions, actor=_runtime(ctx).acting("catalog.change")
    )
    if as_json:
        print_json({"removed": [v.ref for v in removed]})
        return
    for version in removed:
        stderr().print(f"removed {version.ref}")


@app.command("promote")
def promote_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N to move."),
    to: str = typer.Option(..., "--to", help="Target stage (candidate, approved, production…)."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded with the transition)."),
    sunset: str | None = typer.Option(None, "--sunset", help="Sunset date YYYY-MM-DD."),
    replacement: str | None = typer.Option(
        None, "--replacement", help="Alias (or model) clients should use instead."
    ),
    policy: Path | None = POLICY_OPTION,
    actor: str | None = ACTOR_OPTION,
    override_no_policy: bool = typer.Option(
        False,
        "--override-no-policy",
        help="With no policy file, promote into approved/production anyway (audited).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Move a version to another stage; the policy's gates are checked first."""
    service = lifecycle(_runtime(ctx), policy)
    promotion = service.promote(
        ref,
        to,
        actor=actor_of(ctx, "lifecycle.promote", actor),
        reason=reason,
        sunset_at=parse_day(sunset, "--sunset"),
        replacement=replacement,
        override_no_policy=override_no_policy,
    )
    if as_json:
        print_json(promotion.to_json())
        return
    if promotion.report.results:
        print_table(
            None,
            ["GATE", "STAGE", "STATUS", "DETAIL"],
            [[r.gate, r.stage, r.status, r.detail] for r in promotion.report.results],
        )
    for transition in promotion.transitions:
        stderr().print(
            f"{transition.ref}: {transition.from_stage} → [bold]{transition.to_stage}[/] "
            f"by {transition.actor}"
        )


@app.command("history")
def history_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every stage transition of a model's versions: who, when, why, on what evidence."""
    transitions = lifecycle(_runtime(ctx)).history(name)
    if as_json:
        print_json([t.to_json() for t in transitions])
        return
    print_table(
        None,
        ["WHEN", "VERSION", "FROM", "TO", "ACTOR", "REASON", "EVIDENCE"],
        [
            [
                t.at.strftime("%Y-%m-%d %H:%M:%S"),
                t.ref,
                t.from_stage,
                t.to_stage,
                t.actor,
                t.reason,
                ", ".join(t.evidence),
            ]
            for t in transitions
        ],
    )


@app.command("card")
def card_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file."),
    intended_use: str | None = typer.Option(
        None, "--intended-use", help="Set the card's intended-use text first."
    ),
) -> None:
    """Write a version's model card (Markdown) to stdout or a file."""
    from modelyard.catalog.cards import card_for

    service = lifecycle(_runtime(ctx))
    if intended_use is not None:
        service.set_intended_use(ref, intended_use, actor=_runtime(ctx).acting("catalog.change"))
    text = card_for(service, ref)
    if output is None:
        sys.stdout.write(text)
        return
    write_text(output, text)
    stderr().print(f"wrote {output}")


@app.command("sign")
def sign_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N to sign."),
    key: Path = typer.Option(..., "--key", help="Elliptic-curve private key (PEM)."),
    actor: str | None = ACTOR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Sign a version's files with model-signing (key mode, offline); the bundle is stored."""
    from modelyard.catalog.signing import Signatures

    runtime = _runtime(ctx)
    signature = Signatures(runtime.registry, runtime.settings).sign(
        ref, key, actor=actor_of(ctx, "catalog.change", actor)
    )
    if as_json:
        print_json(signature.to_json())
        return
    stderr().print(
        f"signed [bold]{signature.ref}[/] with key {signature.key_sha256[:12]} "
        f"(bundle sha256:{signature.bundle_sha256[:12]})"
    )


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N to verify."),
    pubkey: Path = typer.Option(..., "--pubkey", help="Public key (PEM) to verify with."),
    actor: str | None = ACTOR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Verify a version's stored signature with a public key, re-hashing its stored files.

    Exits 1 when no stored signature by that key verifies."""
    from modelyard.catalog.signing import Signatures

    runtime = _runtime(ctx)
    result = Signatures(runtime.registry, runtime.settings).verify(
        ref, pubkey, actor=actor_of(ctx, "catalog.change", actor)
    )
    if as_json:
        print_json(result.to_json())
    else:
        verdict = "[green]verified[/]" if result.ok else "[red]NOT verified[/]"
        stderr().print(f"{result.ref}: {verdict}: {result.detail}")
    if not result.ok:
        raise typer.Exit(1)


@app.command("trial-load")
def trial_load_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N to load."),
    actor: str | None = ACTOR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Load a GGUF version in a sandboxed engine worker and generate one token (an endpoint
    version: probe its replicas' identity and a 1-token completion); the result is recorded
    (the policy's trial_load gate needs a success). Exits 1 when it fails."""
    from modelyard.engines.endpoint_registration import run_endpoint_trial
    from modelyard.engines.endpoints import is_endpoint
    from modelyard.engines.trial_load import run_trial_load

    runtime = _runtime(ctx)
    trial = run_endpoint_trial if is_endpoint(runtime.registry.get(ref)) else run_trial_load
    result = trial(
        runtime.registry, runtime.settings, ref, actor=actor_of(ctx, "catalog.change", actor)
    )
    if as_json:
        print_json(result.to_json())
    elif result.ok:
        stderr().print(f"{result.ref}: [green]trial load ok[/]: {result.detail}")
    else:
        stderr().print(f"{result.ref}: [red]trial load failed[/]: {result.detail}")
        if result.log_tail:
            stderr().print(result.log_tail, markup=False, highlight=False)
    if not result.ok:
        raise typer.Exit(1)


app.command("add-endpoint")(add_endpoint_command)
