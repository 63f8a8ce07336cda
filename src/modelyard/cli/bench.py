"""``modelyard bench``: a load sweep against a local engine worker, an endpoint version's
replicas (directly, as the gateway reaches them) or an OpenAI-compatible URL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import typer

from modelyard.bench.chart import write_chart
from modelyard.bench.results import LevelResult
from modelyard.bench.runner import BenchConfig, run_sweep
from modelyard.bench.targets import EngineTarget, HttpOptions, HttpTarget, Target
from modelyard.cli.output import print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.engines.endpoints import EndpointSpec, is_endpoint
from modelyard.engines.loader import open_engine
from modelyard.engines.remote_sync import open_remote_engine
from modelyard.errors import InvalidInput


def parse_levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidInput(f"--concurrency must be a list like 1,2,4,8, not {text!r}") from None
    if not levels or any(level < 1 for level in levels):
        raise InvalidInput("--concurrency needs positive integers, e.g. 1,2,4,8")
    return levels


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.0f}"


def print_levels(title: str, levels: list[LevelResult]) -> None:
    print_table(
        title,
        [
            "conc",
            "sent",
            "ok",
            "err",
            "req/s",
            "out tok/s",
            "tok/s/stream",
            "out tok (mean)",
            "TTFT p50/p90/p99 ms",
            "ITL p50/p90/p99 ms",
        ],
        [
            [
                lv.concurrency,
                lv.sent,
                lv.completed,
                lv.errors,
                f"{lv.requests_per_s:.2f}",
                f"{lv.aggregate_tokens_per_s:.1f}",
                "" if lv.per_stream_tokens_per_s is None else f"{lv.per_stream_tokens_per_s:.1f}",
                "" if lv.output_tokens_mean is None else f"{lv.output_tokens_mean:.1f}",
                "/".join(_ms(lv.ttft_s[q]) for q in ("p50", "p90", "p99")),
                "/".join(_ms(lv.itl_s[q]) for q in ("p50", "p90", "p99")),
            ]
            for lv in levels
        ],
    )


def engine_target(
    runtime: Runtime, model: str, concurrency: int
) -> tuple[EngineTarget, Callable[[str], int] | None]:
    """A registered version as a bench target, and its tokenizer where it has one here: a
    GGUF version's engine worker, or an endpoint version's replicas (raw prompts to
    ``/v1/completions``, sized from word counts)."""
    version = runtime.registry.resolve(model)
    if is_endpoint(version):
        remote = open_remote_engine(version, runtime.settings, runtime.db)
        replicas = len(EndpointSpec.of(version).urls)
        name = f"{version.ref} (remote endpoint, {replicas} replica(s))"
        return EngineTarget(name, remote, concurrency), None
    engine = open_engine(version, runtime.blobs, runtime.settings, slots=concurrency)
    return EngineTarget(f"{version.ref} (engine worker)", engine, concurrency), engine.count_tokens


def bench_command(
    ctx: typer.Context,
    model: str = typer.Option(
        ..., "--model", help="Model name (registered, or as the URL knows it)."
    ),
    url: str | None = typer.Option(
        None, "--url", help="An OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1."
    ),
    key: str | None = typer.Option(None, "--key", help="Bearer key for --url."),
    concurrency: str = typer.Option("1,2,4,8", "--concurrency", help="Levels, e.g. 1,2,4,8."),
    prompt_tokens: int = typer.Option(128, "--prompt-tokens", min=1),
    max_tokens: int = typer.Option(64, "--max-tokens", min=1),
    requests: int = typer.Option(16, "--requests", min=1, help="Requests per level."),
    endpoint: str = typer.Option("chat", "--endpoint", help="chat or completions (with --url)."),
    ignore_eos: bool = typer.Option(
        False, "--ignore-eos", help="Ask the server for exactly --max-tokens (vLLM, llama-server)."
    ),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Unmeasured requests first."),
    timeout_s: float = typer.Option(300.0, "--timeout", min=1.0, help="Per request, seconds."),
    as_json: bool = typer.Option(False, "--json"),
    chart: Path | None = typer.Option(None, "--chart", help="Write a chart (.svg or .html)."),
) -> None:
    """Measure requests/s, tokens/s, TTFT and inter-token latency at each concurrency."""
    runtime: Runtime = ctx.obj
    levels = parse_levels(concurrency)
    if endpoint not in ("chat", "completions"):
        raise InvalidInput("--endpoint must be chat or completions", param="endpoint")
    config = BenchConfig(levels, prompt_tokens, max_tokens, requests, warmup)
    target: Target
    count: Callable[[str], int] | None = None
    if url:
        options = HttpOptions(url, model, key, endpoint, ignore_eos, timeout_s)
        target = HttpTarget(options, max(levels))
    else:
        target, count = engine_target(runtime, model, max(levels))

    def progress(level: LevelResult) -> None:
        if not as_json:
            stderr().print(
                f"concurrency {level.concurrency}: {level.completed}/{level.sent} ok, "
                f"{level.aggregate_tokens_per_s:.1f} tok/s"
            )

    async def sweep() -> list[LevelResult]:
        try:
            return await run_sweep(target, config, count, progress)
        finally:
            await target.aclose()

    results = asyncio.run(sweep())
    if chart is not None:
        write_chart(chart, target.name, results)
    if as_json:
        print_json(
            {
                "target": target.name,
                "config": config.to_json(),
                "levels": [lv.to_json() for lv in results],
            }
        )
    else:
        print_levels(f"bench: {target.name}", results)
    if all(lv.completed == 0 for lv in results):
        raise typer.Exit(1)
