"""``modelyard recommend``: rank open-weight models for a task, languages, licence, hardware."""

from __future__ import annotations

from pathlib import Path

import typer

from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.advisor.recommend import (
    QUANT_PREFERENCE,
    TASKS,
    Candidate,
    LicenceNeed,
    Requirement,
    normalise_task,
    recommend,
    registered_matches,
)
from modelyard.cli.output import print_json, print_table, stdout
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput
from modelyard.hardware.store import ProfileStore


def _languages(text: str) -> tuple[str, ...]:
    codes = tuple(code.strip().lower() for code in text.split(",") if code.strip())
    for code in codes:
        if len(code) != 2 or not code.isalpha():
            raise InvalidInput(f"not a two-letter language code: {code!r}", param="languages")
    return codes


def _where(c: Candidate) -> str:
    if c.in_registry:
        return "in registry: " + ", ".join(c.in_registry)
    return "obtain"


def recommend_command(
    ctx: typer.Context,
    task: str | None = typer.Option(None, "--task", help=f"One of: {', '.join(TASKS)}."),
    languages: str = typer.Option("", "--languages", help="Comma-separated codes, e.g. de,fr."),
    context: int = typer.Option(4096, "--context", min=1, help="Context tokens needed."),
    licence: str = typer.Option("any", "--licence", help="commercial or any."),
    hardware: str = typer.Option("local", "--hardware", help="Hardware profile name."),
    min_tps: float | None = typer.Option(
        None, "--min-tokens-per-second", min=0, help="Minimum decode speed."
    ),
    quant: str | None = typer.Option(
        None, "--quant", help="Only this quantization (default: best of Q8_0..Q4_K_M that fits)."
    ),
    top: int = typer.Option(10, "--top", min=1, help="How many ranked models to show."),
    show_excluded: bool = typer.Option(True, "--excluded/--no-excluded"),
    knowledge: Path | None = typer.Option(None, "--knowledge", help="Your own knowledge base."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Rank models: memory fit, expected speed, licence, languages, task — with reasons."""
    runtime: Runtime = ctx.obj
    if licence not in ("commercial", "any"):
        raise InvalidInput("--licence must be 'commercial' or 'any'", param="licence")
    licence_need: LicenceNeed = "commercial" if licence == "commercial" else "any"
    need = Requirement(
        task=normalise_task(task),
        languages=_languages(languages),
        context=context,
        licence=licence_need,
        min_tokens_per_second=min_tps,
        quants=(quant.upper(),) if quant else QUANT_PREFERENCE,
    )
    profile = ProfileStore(runtime.settings).load(hardware)
    kb = load_knowledge_base(knowledge)
    registered = registered_matches(runtime.registry.list_versions(), kb)
    results = recommend(kb, need, profile, registered=registered)
    ranked = [c for c in results if not c.excluded]
    excluded = [c for c in results if c.excluded]
    if as_json:
        print_json(
            {
                "hardware": profile.name,
                "requirement": {
                    "task": need.task,
                    "languages": list(need.languages),
                    "context": need.context,
                    "licence": need.licence,
                    "min_tokens_per_second": need.min_tokens_per_second,
                },
                "ranked": [c.to_json() for c in ranked],
                "excluded": [c.to_json() for c in excluded],
            }
        )
        return
    print_table(
        f"Ranked for {need.task or 'any task'} on {profile.name}",
        ["#", "MODEL", "PARAMS", "QUANT", "DEVICE", "MEMORY", "TOK/S", "LICENCE", "WHERE"],
        [
            [
                c.rank,
                c.entry.id,
                f"{c.entry.architecture.parameters / 1e9:.1f}B",
                c.placement.quant if c.placement else "",
                c.placement.device if c.placement else "",
                f"{c.placement.memory_bytes / 1e9:.1f} GB" if c.placement else "",
                f"{c.placement.tokens_per_second:.1f}"
                if c.placement and c.placement.tokens_per_second
                else "speed unknown",
                c.entry.licence.id,
                _where(c),
            ]
            for c in ranked[:top]
        ],
    )
    console = stdout()
    for c in ranked[:top]:
        console.print(f"{c.rank}. {c.entry.id}", style="bold", markup=False)
        for reason in c.reasons:
            console.print(f"   - {reason}", markup=False)
        if c.obtain:
            console.print(f"   - obtain {c.obtain}", markup=False)
    if show_excluded and excluded:
        console.print("Excluded:", style="bold")
        for c in excluded:
            console.print(f"  {c.entry.id}: {'; '.join(c.exclusions)}", markup=False)
