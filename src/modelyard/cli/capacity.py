"""``modelyard capacity``: engine replicas and gateway processes for a target load."""

from __future__ import annotations

from pathlib import Path

import typer

from modelyard.capacity.measured import (
    audit_appends_per_s,
    best_requests_per_s,
    engine_bench,
    read_json,
)
from modelyard.capacity.plan import Plan, Target, plan, replica_from_bench, replica_from_throughput
from modelyard.cli.output import print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput


def capacity_command(
    ctx: typer.Context,
    rps: float = typer.Option(..., "--rps", help="Target requests per second."),
    prompt_tokens: int = typer.Option(..., "--prompt-tokens", help="Mean prompt length."),
    output_tokens: int = typer.Option(..., "--output-tokens", help="Mean answer length."),
    hardware: str | None = typer.Option(
        None, "--hardware", help="Engine machines' hardware profile (used without --engine-bench)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="With --hardware: estimate this knowledge-base model's speed."
    ),
    engine_bench_file: Path | None = typer.Option(
        None, "--engine-bench", help="`modelyard bench --json` against one engine replica."
    ),
    gateway_bench_file: Path | None = typer.Option(
        None,
        "--gateway-bench",
        help="`bench/gateway_bench.py --json` (planned per core), or `modelyard bench --json` "
        "against one gateway process.",
    ),
    audit_bench_file: Path | None = typer.Option(
        None, "--audit-bench", help="`bench/audit_bench.py --json` on the production database."
    ),
    max_ttft_ms: float | None = typer.Option(None, "--max-ttft-ms", help="TTFT objective."),
    headroom: float = typer.Option(0.8, "--headroom", help="Plan each part at this load share."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """How many engine replicas and gateway processes a target load needs, from measurements.

    Exits 1 when the target does not fit (the audit log of one database is the ceiling).
    """
    target = Target(
        rps,
        prompt_tokens,
        output_tokens,
        max_ttft_s=max_ttft_ms / 1000 if max_ttft_ms is not None else None,
        headroom=headroom,
    )
    target.check()
    if engine_bench_file is not None:
        bench = engine_bench(
            read_json(engine_bench_file, "engine benchmark"), str(engine_bench_file)
        )
        replica = replica_from_bench(bench, target)
    elif hardware is not None:
        from modelyard.advisor.knowledge import load_knowledge_base
        from modelyard.cost.throughput import resolve_throughput
        from modelyard.hardware.store import ProfileStore

        runtime: Runtime = ctx.obj
        profile = ProfileStore(runtime.settings).load(hardware)
        throughput = resolve_throughput(profile, load_knowledge_base(), model=model)
        replica = replica_from_throughput(throughput, target)
    else:
        raise InvalidInput("give --engine-bench (measured) or --hardware (estimated)")
    gateway = (
        best_requests_per_s(
            read_json(gateway_bench_file, "gateway benchmark"), str(gateway_bench_file)
        )
        if gateway_bench_file is not None
        else None
    )
    audit = (
        audit_appends_per_s(read_json(audit_bench_file, "audit benchmark"), str(audit_bench_file))
        if audit_bench_file is not None
        else None
    )
    result = plan(target, replica, gateway_requests_per_s=gateway, audit_appends_per_s=audit)
    if as_json:
        print_json(result.to_json())
    else:
        _print(result)
    if not result.feasible:
        raise typer.Exit(1)


def _print(result: Plan) -> None:
    replica = result.replica
    shape = (
        f"at concurrency {replica.concurrency}, TTFT {replica.ttft_s * 1000:.0f} ms"
        if replica.concurrency is not None and replica.ttft_s is not None
        else "no batching assumed"
    )
    stderr().print(
        f"one engine replica: {replica.requests_per_s:.2f} req/s ({shape}; {replica.source})"
    )
    rows = [
        [
            part.name,
            "?" if part.count is None else part.count,
            "" if part.load_share is None else f"{part.load_share:.0%}",
            "ok" if part.feasible else "OVER",
            part.note,
        ]
        for part in result.parts
    ]
    target = result.target
    print_table(
        f"capacity for {target.requests_per_s:g} req/s, {target.prompt_tokens} prompt + "
        f"{target.output_tokens} output tokens (headroom {target.headroom:.0%})",
        ["part", "count", "load", "fits", "why"],
        rows,
    )
