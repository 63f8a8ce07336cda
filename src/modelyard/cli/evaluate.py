"""``modelyard eval``: evaluate a model on your own data, probe for bias, compare runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from modelyard.atomic_write import write_text
from modelyard.cli.output import print_fields, print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput
from modelyard.evaluate.bias import CATEGORIES, bias_markdown, builtin_probe_path
from modelyard.evaluate.metrics import KINDS
from modelyard.evaluate.models import engine_factory, scorer_factory
from modelyard.evaluate.probe_runs import run_probes
from modelyard.evaluate.report import (
    DEFAULT_PRICE_PER_HOUR,
    build_report,
    fmt,
    to_markdown,
)
from modelyard.evaluate.report_files import write_report
from modelyard.evaluate.runner import EvalRunner, EvalSpec
from modelyard.evaluate.runs import RunRecord, RunStore

app = typer.Typer(help="Evaluate models on your own data; bias probes; compare runs.")


@contextmanager
def row_progress(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (only when it is a terminal) fed with (done, total)."""
    console = stderr()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )
    task = progress.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update


def make_runner(runtime: Runtime) -> EvalRunner:
    return EvalRunner(
        runtime.registry,
        RunStore(runtime.db),
        engine_factory=engine_factory(runtime.blobs, runtime.settings),
        scorer_factory=scorer_factory(runtime.blobs, runtime.settings),
        created_by=runtime.acting("evals.run"),
    )


def load_schema(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read the JSON schema {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{path} is not a JSON Schema object")
    return value


def show_run(run: RunRecord) -> None:
    ci = f"{fmt(run.ci_low)} to {fmt(run.ci_high)}" if run.ci_low is not None else None
    print_fields(
        [
            ("run", run.id),
            ("kind", run.kind),
            ("model", f"{run.model_ref} ({run.model_digest[:12]})"),
            ("metric", run.metric),
            ("suite", run.suite),
            ("data", f"{run.data_path} (sha256 {run.data_sha256[:12]})"),
            ("rows", f"{run.rows_done}/{run.rows_total}"),
            ("status", run.status),
            ("score", fmt(run.score)),
            ("95% CI", ci),
            ("latency p50 / p95", _seconds(run.details, "latency_p50_s", "latency_p95_s")),
            ("tokens/s", fmt(run.details.get("tokens_per_s"), 1) if run.kind == "eval" else None),
            ("duration", f"{run.duration_s or 0:.1f} s"),
        ]
    )


def _seconds(details: dict[str, Any], *keys: str) -> str | None:
    values = [details.get(key) for key in keys]
    if all(v is None for v in values):
        return None
    return " / ".join(fmt(v) for v in values) + " s"


@app.command("run")
def run_command(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help="NAME, NAME@N or an alias."),
    data: Path = typer.Option(..., "--data", help="JSONL rows (a text file for perplexity)."),
    metric: str = typer.Option(..., "--metric", help=f"One of: {', '.join(KINDS)}."),
    suite: str | None = typer.Option(None, "--suite", help="A name to group runs under."),
    max_tokens: int = typer.Option(64, "--max-tokens", min=1, help="Per generated answer."),
    stop: list[str] = typer.Option([], "--stop", help="Stop generating at this text."),
    seed: int = typer.Option(0, "--seed"),
    window: int = typer.Option(256, "--window", min=2, help="Perplexity window in tokens."),
    schema: Path | None = typer.Option(None, "--schema", help="JSON Schema for all rows."),
    resume: str | None = typer.Option(None, "--resume", help="Continue this unfinished run."),
    fresh: bool = typer.Option(False, "--fresh", help="Never resume: always start a new run."),
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
) -> None:
    """Evaluate a model on a data file; the run is stored as evidence for the version."""
    runtime: Runtime = ctx.obj
    spec = EvalSpec(
        model=model,
        data=data,
        metric=metric,
        suite=suite,
        max_tokens=max_tokens,
        stop=tuple(stop),
        seed=seed,
        window=window,
        schema=load_schema(schema),
        resume=resume,
        fresh=fresh,
    )
    with row_progress(f"eval {model} / {metric}") as progress:
        run = make_runner(runtime).run(spec, progress)
    if as_json:
        print_json(run.to_json())
    else:
        show_run(run)


@app.command("list")
def list_command(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", help="Only runs of NAME or NAME@N."),
    limit: int = typer.Option(50, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List evaluation and bias runs, newest first."""
    runtime: Runtime = ctx.obj
    runs = RunStore(runtime.db).list_runs(model, limit)
    if as_json:
        print_json([r.to_json() for r in runs])
        return
    print_table(
        "Evaluation runs",
        ["run", "model", "kind", "metric", "rows", "score", "95% CI", "status", "created"],
        [
            [
                r.id[:8],
                r.model_ref,
                r.kind,
                r.metric,
                f"{r.rows_done}/{r.rows_total}",
                fmt(r.score),
                f"{fmt(r.ci_low)} to {fmt(r.ci_high)}" if r.ci_low is not None else "",
                r.status,
                r.created_at.strftime("%Y-%m-%d %H:%M"),
            ]
            for r in runs
        ],
    )


@app.command("show")
def show_command(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="A run id (or a unique prefix of one)."),
    rows: bool = typer.Option(False, "--rows", help="Also print every row's result."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one run (and its per-row results with --rows)."""
    runtime: Runtime = ctx.obj
    store = RunStore(runtime.db)
    run = store.get(run_id)
    results = store.rows(run.id) if rows else []
    if as_json:
        data = run.to_json()
        if rows:
            data["rows"] = [{"index": r.index, "score": r.score, **r.result} for r in results]
        print_json(data)
        return
    show_run(run)
    if rows:
        print_table(
            None,
            ["row", "score", "result"],
            [[r.index, fmt(r.score), json.dumps(r.result, default=str)[:120]] for r in results],
        )


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids."),
    out: Path | None = typer.Option(None, "--out", help="Write report.md and report.html here."),
    price_per_hour: float = typer.Option(
        DEFAULT_PRICE_PER_HOUR, "--price-per-hour", min=0.0, help="Machine price, $/hour."
    ),
    title: str = typer.Option("Evaluation comparison", "--title"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare runs side by side: quality with CI, latency, tokens/s, cost per 1,000 requests."""
    runtime: Runtime = ctx.obj
    store = RunStore(runtime.db)
    report = build_report(title, [store.get(r) for r in run_ids], price_per_hour)
    if out is not None:
        markdown, html = write_report(report, out)
        stderr().print(f"wrote {markdown} and {html}")
    if as_json:
        print_json(report.to_json())
    elif out is None:
        print(to_markdown(report))


@app.command("bias")
def bias_command(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help="NAME, NAME@N or an alias."),
    category: list[str] = typer.Option(
        [], "--category", help=f"Shipped suites to run (default all): {', '.join(CATEGORIES)}."
    ),
    probes: list[Path] = typer.Option([], "--probes", help="Your own probe JSONL file(s)."),
    max_gap: float | None = typer.Option(
        None, "--max-gap", min=0.0, help="Fail (exit 1) when a category's mean gap is above this."
    ),
    report: Path | None = typer.Option(None, "--report", help="Also write a Markdown report."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Counterfactual bias probes: gaps between groups per category, stored as evidence."""
    runtime: Runtime = ctx.obj
    files = list(probes)
    if category or not files:
        files += [builtin_probe_path(c) for c in (category or CATEGORIES)]
    with row_progress(f"bias probes {model}") as progress:
        runs = run_probes(
            runtime.registry,
            RunStore(runtime.db),
            scorer_factory(runtime.blobs, runtime.settings),
            model=model,
            probe_files=files,
            max_gap=max_gap,
            created_by=runtime.acting("evals.run"),
            progress=progress,
        )
    if report is not None:
        categories = [(r.metric.removeprefix("bias:"), r.score or 0.0, r.details) for r in runs]
        write_text(report, bias_markdown(runs[0].model_ref, categories))
        stderr().print(f"wrote {report}")
    if as_json:
        print_json([r.to_json() for r in runs])
    else:
        print_table(
            f"Bias probes: {runs[0].model_ref}",
            ["category", "measure", "mean gap", "95% CI", "spread", "worst pair", "pass", "run"],
            [
                [
                    r.metric.removeprefix("bias:"),
                    r.details["measure"],
                    fmt(r.score),
                    f"{fmt(r.ci_low)} to {fmt(r.ci_high)}",
                    fmt(r.details["spread"]),
                    _worst(r.details),
                    {None: "", True: "yes", False: "NO"}[r.details["passed"]],
                    r.id[:8],
                ]
                for r in runs
            ],
        )
    if any(r.details.get("passed") is False for r in runs):
        raise typer.Exit(1)


def _worst(details: dict[str, Any]) -> str:
    pairs = details.get("worst_pairs") or []
    if not pairs:
        return ""
    top = pairs[0]
    return f"{top['favoured']} > {top['disfavoured']} ({top['gap']:.3f})"
