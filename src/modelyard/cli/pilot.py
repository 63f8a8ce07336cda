"""``modelyard pilot``: several candidate models on the same data, one report."""

from __future__ import annotations

from pathlib import Path

import typer

from modelyard.cli.evaluate import load_schema, make_runner, row_progress
from modelyard.cli.output import print_json, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput
from modelyard.evaluate.metrics import KINDS
from modelyard.evaluate.pilot import parse_models, plan_pilot, run_pilot
from modelyard.evaluate.report import DEFAULT_PRICE_PER_HOUR, build_report, to_markdown
from modelyard.evaluate.report_files import write_report
from modelyard.evaluate.runner import EvalSpec

app = typer.Typer(help="Pilot candidate models on your own data before committing to one.")


@app.command("run")
def pilot_run_command(
    ctx: typer.Context,
    models: str = typer.Option(..., "--models", help="Comma-separated: A,B,C (NAME[@N])."),
    data: Path = typer.Option(..., "--data", help="JSONL rows."),
    metric: str = typer.Option("contains", "--metric", help=f"One of: {', '.join(KINDS)}."),
    out: Path = typer.Option(Path("pilot-report"), "--out", help="Folder for report.md/.html."),
    price_per_hour: float = typer.Option(
        DEFAULT_PRICE_PER_HOUR, "--price-per-hour", min=0.0, help="Machine price, $/hour."
    ),
    max_tokens: int = typer.Option(64, "--max-tokens", min=1),
    stop: list[str] = typer.Option([], "--stop"),
    schema: Path | None = typer.Option(None, "--schema", help="JSON Schema for all rows."),
    title: str = typer.Option("Pilot", "--title"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Evaluate each model on the data and write one Markdown + HTML report. Every input is
    checked first: any problem stops the pilot before a model runs."""
    runtime: Runtime = ctx.obj
    schema_value, schema_problem = None, None
    try:
        schema_value = load_schema(schema)
    except InvalidInput as exc:
        schema_problem = exc.message
    spec = EvalSpec(
        model="",
        data=data,
        metric=metric,
        suite=f"pilot:{title}",
        max_tokens=max_tokens,
        stop=tuple(stop),
        schema=schema_value,
    )
    plan = plan_pilot(
        runtime.registry, parse_models(models), spec, out, schema_problem=schema_problem
    )
    runs = run_pilot(make_runner(runtime), plan, lambda name: row_progress(f"pilot {name}"))
    report = build_report(title, runs, price_per_hour)
    markdown, html = write_report(report, out)
    stderr().print(f"wrote {markdown} and {html}")
    if as_json:
        print_json(report.to_json())
    else:
        print(to_markdown(report))
