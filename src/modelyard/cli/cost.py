"""``modelyard cost``: cost per 1M tokens, comparison with an API bill, chargeback."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.atomic_write import write_text
from modelyard.cli.output import print_fields, print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.cost.chargeback import GroupBy, UsageSource, chargeback
from modelyard.cost.compare import Throughput, compare
from modelyard.cost.html_report import render_html
from modelyard.cost.model import hourly_cost, tokens_per_hour
from modelyard.cost.prices import load_prices
from modelyard.cost.throughput import resolve_throughput, throughput_from_bench
from modelyard.cost.usage_file import read_usage_file
from modelyard.errors import InvalidInput
from modelyard.hardware.profile import HardwareProfile
from modelyard.hardware.store import ProfileStore

app = typer.Typer(help="What self-hosting costs: per 1M tokens, against an API, per team.")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
HARDWARE = typer.Option("local", "--hardware", help="Hardware profile name.")
MODEL = typer.Option(None, "--model", help="Knowledge-base model to estimate speed for.")
TPS = typer.Option(None, "--tokens-per-second", min=0.001, help="Measured decode throughput.")
PREFILL = typer.Option(None, "--prefill-tokens-per-second", min=0.001)
STREAMS = typer.Option(
    None,
    "--streams",
    min=1,
    help="Concurrent streams batched together (default: the engine's MODELYARD_WORKER_SLOTS).",
)
UTILISATION = typer.Option(0.5, "--utilisation", min=0.01, max=1.0, help="Share of hours busy.")
CONTEXT = typer.Option(8192, "--context", min=1, help="Context tokens the model serves.")
BENCH = typer.Option(None, "--bench", help="`modelyard bench --json` output to take speed from.")
TRAFFIC = typer.Option(
    None, "--traffic", help="NAME@N: speed from its served requests in the audit log (30 days)."
)
QUANT = typer.Option(None, "--quant", help="Quantization for --model (default: best that fits).")


def _runtime(ctx: typer.Context) -> Runtime:
    runtime: Runtime = ctx.obj
    return runtime


def _setup(
    runtime: Runtime,
    hardware: str,
    model: str | None,
    tps: float | None,
    prefill: float | None,
    streams_given: int | None,
    context: int,
    quant: str | None = None,
    bench: Path | None = None,
    traffic: str | None = None,
) -> tuple[HardwareProfile, Throughput]:
    profile = ProfileStore(runtime.settings).load(hardware)
    # the engine decodes MODELYARD_WORKER_SLOTS generations at once: that is the concurrency
    # a served model gets unless the command line says otherwise (a benchmark measures it)
    streams = streams_given if streams_given is not None else runtime.settings.worker_slots
    slots_note = (
        f"; {streams} streams = the engine's slots (MODELYARD_WORKER_SLOTS)"
        if streams_given is None
        else ""
    )
    if traffic is not None:
        from modelyard.cost.traffic import served_throughput

        now = datetime.now(UTC)
        measured = served_throughput(runtime.db, traffic, now - timedelta(days=30), now)
        if streams > 1:
            measured = Throughput(
                measured.decode_tokens_per_s * streams,
                None,
                f"{measured.source} x {streams}{slots_note}",
            )
        return profile, measured
    if bench is not None:
        try:
            data = json.loads(bench.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read benchmark results {bench}: {exc}") from exc
        return profile, throughput_from_bench(data, str(bench))
    throughput = resolve_throughput(
        profile,
        load_knowledge_base(),
        model=model,
        tokens_per_second=tps,
        prefill_tokens_per_second=prefill,
        streams=streams,
        context=context,
        quant=quant,
    )
    if tps is None and slots_note:
        throughput = replace(throughput, source=throughput.source + slots_note)
    return profile, throughput


@app.command("rate")
def rate_command(
    ctx: typer.Context,
    hardware: str = HARDWARE,
    model: str | None = MODEL,
    tps: float | None = TPS,
    prefill: float | None = PREFILL,
    streams: int | None = STREAMS,
    utilisation: float = UTILISATION,
    context: int = CONTEXT,
    quant: str | None = QUANT,
    bench: Path | None = BENCH,
    traffic: str | None = TRAFFIC,
    input_share: float = typer.Option(0.8, "--input-share", min=0.0, max=1.0),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cost per 1M tokens on a profile: (hardware + power + upkeep per hour) / tokens per hour."""
    profile, throughput = _setup(
        _runtime(ctx), hardware, model, tps, prefill, streams, context, quant, bench, traffic
    )
    hourly = hourly_cost(profile.cost)
    per_hour = tokens_per_hour(throughput.blended(input_share), utilisation)
    per_1m = hourly.total / per_hour * 1e6
    currency = profile.cost.currency
    data = {
        "hardware": profile.name,
        "currency": currency,
        "hourly": {"hardware": hourly.hardware, "power": hourly.power, "upkeep": hourly.upkeep},
        "hourly_total": hourly.total,
        "tokens_per_second": throughput.blended(input_share),
        "throughput_source": throughput.source,
        "utilisation": utilisation,
        "input_share": input_share,
        "tokens_per_hour": per_hour,
        "cost_per_1m_tokens": per_1m,
    }
    if as_json:
        print_json(data)
        return
    print_fields(
        [
            ("hardware", profile.name),
            ("amortised hardware", f"{hourly.hardware:.4f} {currency}/h"),
            ("power", f"{hourly.power:.4f} {currency}/h"),
            ("upkeep", f"{hourly.upkeep:.4f} {currency}/h"),
            ("total", f"{hourly.total:.4f} {currency}/h"),
            ("throughput", f"{throughput.blended(input_share):,.1f} tok/s ({throughput.source})"),
            ("utilisation", f"{utilisation:.0%} → {per_hour:,.0f} tokens/h"),
            ("cost per 1M tokens", f"{per_1m:,.4f} {currency}"),
        ]
    )


@app.command("prices")
def prices_command(
    ctx: typer.Context,
    prices: Path | None = typer.Option(None, "--prices", help="A price table JSON file."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the API price table in use (shipped, or your override)."""
    table = load_prices(_runtime(ctx).settings, prices)
    if as_json:
        print_json(table.model_dump(mode="json"))
        return
    print_table(
        f"API prices per 1M tokens ({table.currency}, as of {table.as_of}; {table.origin})",
        ["PROVIDER", "MODEL", "INPUT", "OUTPUT", "SOURCE"],
        [
            [p.provider, p.model, f"{p.input_per_1m:g}", f"{p.output_per_1m:g}", p.source]
            for p in table.prices
        ],
    )


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    api_spend_per_year: float = typer.Option(..., "--api-spend-per-year", min=0.01),
    api_model: str = typer.Option("gpt-4o", "--api-model", help="Model in the price table."),
    hardware: str = HARDWARE,
    model: str | None = MODEL,
    tps: float | None = TPS,
    prefill: float | None = PREFILL,
    streams: int | None = STREAMS,
    utilisation: float = UTILISATION,
    context: int = CONTEXT,
    quant: str | None = QUANT,
    bench: Path | None = BENCH,
    traffic: str | None = TRAFFIC,
    input_share: float = typer.Option(
        0.8, "--input-share", min=0.0, max=1.0, help="Share of tokens that are prompt tokens."
    ),
    months: int = typer.Option(36, "--months", min=1, max=120),
    prices: Path | None = typer.Option(None, "--prices", help="A price table JSON file."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Monthly cost of the API and of self-hosting, the break-even month and volume."""
    runtime = _runtime(ctx)
    profile, throughput = _setup(
        runtime, hardware, model, tps, prefill, streams, context, quant, bench, traffic
    )
    table = load_prices(runtime.settings, prices)
    result = compare(
        api_spend_per_year=api_spend_per_year,
        price=table.get(api_model),
        cost=profile.cost,
        throughput=throughput,
        utilisation=utilisation,
        input_share=input_share,
        horizon_months=months,
    )
    if as_json:
        print_json({**result.to_json(), "hardware": profile.name, "prices_as_of": str(table.as_of)})
        return
    c = result.currency
    volume = result.break_even_tokens_per_month
    print_fields(
        [
            (
                "API",
                f"{api_model} at {result.api_price_per_1m:.3f} {c}/1M tokens "
                f"({input_share:.0%} input; prices as of {table.as_of})",
            ),
            (
                "API per month",
                f"{result.api_monthly:,.0f} {c} ≈ {result.tokens_per_month:,.0f} tokens",
            ),
            ("throughput", f"{throughput.source}"),
            (
                "one machine serves",
                f"{result.machine_tokens_per_month:,.0f} tokens/month "
                f"at {utilisation:.0%} utilisation",
            ),
            ("machines needed", f"{result.machines} x {profile.name}"),
            (
                "self-host per month",
                f"{result.self_host_monthly_amortised:,.0f} {c} amortised "
                f"({result.self_host_monthly_cash:,.0f} {c} running costs + "
                f"{result.upfront:,.0f} {c} up front)",
            ),
            ("self-host per 1M tokens", f"{result.self_host_per_1m:,.3f} {c}"),
            (
                "break-even",
                f"month {result.break_even_month}"
                if result.break_even_month
                else f"not within {months} months",
            ),
            (
                "self-hosting wins above",
                f"{volume:,.0f} tokens/month"
                if volume
                else "never at this price: one machine's full capacity costs more than the API",
            ),
        ]
    )


_RELATIVE = re.compile(r"^(\d+)([dhw])$")


def parse_when(text: str, now: datetime) -> datetime:
    """ISO date/time (UTC unless given) or a relative '30d', '12h', '2w'."""
    match = _RELATIVE.match(text.strip())
    if match:
        unit = {"d": "days", "h": "hours", "w": "weeks"}[match.group(2)]
        return now - timedelta(**{unit: int(match.group(1))})
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"not a date, time or '30d'-style period: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command("report")
def report_command(
    ctx: typer.Context,
    by: str = typer.Option("team", "--by", help="team or key."),
    since: str = typer.Option("30d", "--since", help="ISO date/time or e.g. 30d."),
    until: str | None = typer.Option(None, "--until", help="ISO date/time (default now)."),
    hardware: str = HARDWARE,
    model: str | None = MODEL,
    tps: float | None = TPS,
    prefill: float | None = PREFILL,
    streams: int | None = STREAMS,
    context: int = CONTEXT,
    quant: str | None = QUANT,
    bench: Path | None = BENCH,
    traffic: str | None = TRAFFIC,
    machines: int = typer.Option(1, "--machines", min=1, help="Machines serving the traffic."),
    usage: Path | None = typer.Option(
        None, "--usage", help="JSON-lines usage instead of the audit log."
    ),
    html: Path | None = typer.Option(None, "--html", help="Also write an HTML page here."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Chargeback: tokens per team or key from the audit log, priced; idle capacity apart."""
    if by not in ("team", "key"):
        raise InvalidInput("--by must be team or key", param="by")
    group: GroupBy = "team" if by == "team" else "key"
    runtime = _runtime(ctx)
    now = datetime.now(UTC)
    start = parse_when(since, now)
    end = parse_when(until, now) if until else now
    profile, throughput = _setup(
        runtime, hardware, model, tps, prefill, streams, context, quant, bench, traffic
    )
    source: UsageSource
    if usage is not None:
        source = read_usage_file(usage)
    else:
        from modelyard.cost.audit_usage import AuditUsage

        source = AuditUsage(runtime.db)
    rows = source.usage(start, end, group)
    prompt = sum(r.prompt_tokens for r in rows)
    total = prompt + sum(r.completion_tokens for r in rows)
    # capacity for the mix actually served (prompt tokens are cheaper than generated ones)
    input_share = prompt / total if total else 0.8
    capacity = tokens_per_hour(throughput.blended(input_share), 1.0) * machines
    report = chargeback(
        rows,
        by=group,
        since=start,
        until=end,
        hourly_cost=hourly_cost(profile.cost).total * machines,
        capacity_tokens_per_hour=capacity,
        currency=profile.cost.currency,
    )
    if html is not None:
        write_text(html, render_html(report))
        if not as_json:
            stderr().print(f"wrote {html}")
    if as_json:
        print_json(report.to_json())
        return
    cur = report.currency
    hits = any(x.cache_hits for x in report.lines)  # then: what hits were priced at, apart
    print_table(
        f"Chargeback by {group}, {start:%Y-%m-%d} to {end:%Y-%m-%d}: {report.period_cost:,.2f} "
        f"{cur} ({report.rate_per_1m:,.4f} {cur}/1M tokens at full use)",
        [group.upper(), "REQUESTS", "PROMPT", "COMPLETION"]
        + (["CACHE HITS", "PRICED TOKENS"] if hits else [])
        + ["COST", "SHARE"],
        [
            [
                x.name,
                f"{x.requests:,}",
                f"{x.prompt_tokens:,}",
                f"{x.completion_tokens:,}",
                *([f"{x.cache_hits:,}", f"{x.charged_tokens:,}"] if hits else []),
                f"{x.cost:,.2f} {cur}",
                f"{x.share:.1%}",
            ]
            for x in [*report.lines, report.idle]
        ],
    )
    if hits:
        stderr().print(
            "cache hits are priced at the tokens they were charged "
            "(MODELYARD_CACHE_HIT_TOKEN_RATE), not at their full tokens"
        )
