"""``modelyard quantize``: new versions at other quantization levels, and what each costs.

``modelyard quantize NAME[@N] --type Q8_0`` makes a version; ``modelyard quantize report
NAME`` compares the levels present. The group routes anything that is not ``report`` to the
``make`` command, so the short form works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from modelyard.cli.output import human_bytes, print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.quantize.levels import LEVELS


class _DefaultToMake(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["make", *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's help, then the short form's (``--type`` and the rest) under its own name."""
        super().format_help(ctx, formatter)
        make = self.commands["make"]
        make_ctx = type(ctx)(make, info_name=ctx.info_name, parent=ctx.parent)
        make.format_help(make_ctx, formatter)


app = typer.Typer(
    cls=_DefaultToMake,
    help="Make a version at another level: `quantize NAME\\[@N] --type Q8_0 \\[--name NEW]`. "
    "Compare the levels: `quantize report NAME`.",
    no_args_is_help=True,
)


@app.command("make", hidden=True)
def make_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="NAME, NAME@N or an alias (a GGUF version)."),
    level: str = typer.Option(..., "--type", help=f"One of: {', '.join(LEVELS)}."),
    name: str | None = typer.Option(None, "--name", help="Name for the result."),
    allow_requantize: bool = typer.Option(
        False, "--allow-requantize", help="Quantize an already-quantized source anyway."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Quantize a version: modelyard quantize NAME\\[@N] --type Q8_0 \\[--name NEW]."""
    from modelyard.quantize.service import QuantizeRequest, quantize_version

    runtime: Runtime = ctx.obj
    request = QuantizeRequest(model, level, name, allow_requantize)
    with stderr().status(f"quantizing {model} to {level.upper()}", spinner="dots"):
        version = quantize_version(
            request,
            runtime.registry,
            runtime.settings,
            created_by=runtime.acting("evals.run"),
        )
    if as_json:
        print_json(version.to_json())
        return
    lineage = version.lineage
    print(
        f"quantized {lineage['source']} ({human_bytes(lineage['source_size_bytes'])}) → "
        f"{version.ref} {lineage['type']} ({human_bytes(version.size_bytes)}) "
        f"sha256:{version.digest[:12]}"
    )


@app.command("report")
def report_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A model name: its versions and their quantizations."),
    eval_data: Path | None = typer.Option(
        None, "--eval", help="Held-out chat rows: add each level's exact-answer score."
    ),
    text: Path | None = typer.Option(None, "--text", help="Perplexity text (default: built in)."),
    chart: Path | None = typer.Option(None, "--chart", help="Write an SVG chart here."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Compare every level of a model: size, memory, tokens/s, perplexity, eval score."""
    from modelyard.quantize.chart import write_chart
    from modelyard.quantize.report import REFERENCE_TEXT, build_report

    runtime: Runtime = ctx.obj
    console = stderr()
    reference_text = text.read_text() if text else REFERENCE_TEXT
    with console.status("measuring", spinner="dots") as status:
        report = build_report(
            runtime.registry,
            runtime.settings,
            name,
            text=reference_text,
            eval_path=eval_data,
            progress=lambda message: status.update(message),
        )
    if chart is not None:
        write_chart(report, chart)
    if as_json:
        data: dict[str, Any] = report.to_json()
        data["chart"] = str(chart) if chart else None
        print_json(data)
        return
    print_table(
        f"{name}: quantization levels (reference {report.reference})",
        ["version", "level", "file", "memory", "tok/s", "perplexity", "Δ ppl", "exact", "Δ exact"],
        [
            [
                row.ref,
                row.level,
                human_bytes(row.size_bytes),
                human_bytes(row.memory_bytes),
                f"{row.tokens_per_s:.1f}",
                f"{row.perplexity:.3f}",
                _pct(row.perplexity_delta),
                "-" if row.exact is None else f"{row.exact:.1%}",
                _pct(row.exact_delta, points=True),
            ]
            for row in report.rows
        ],
    )
    if chart is not None:
        console.print(f"chart: {chart}")


def _pct(value: float | None, *, points: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.1f} pt" if points else f"{value:+.1%}"
