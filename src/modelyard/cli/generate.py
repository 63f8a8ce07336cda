"""``modelyard run``: generate from a model through its engine worker, streaming to the terminal."""

from __future__ import annotations

import sys
import time

import typer

from modelyard.cli.output import stderr
from modelyard.cli.runtime import Runtime
from modelyard.engines.base import Finish, SamplingParams
from modelyard.engines.loader import open_engine
from modelyard.errors import InvalidInput


def run_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="NAME, NAME@N or an alias."),
    prompt: str = typer.Argument(..., help="The prompt ('-' reads standard input)."),
    max_tokens: int = typer.Option(128, "--max-tokens", min=1),
    temperature: float = typer.Option(0.8, "--temperature", min=0.0, help="0 is greedy."),
    top_p: float = typer.Option(0.95, "--top-p", min=0.0, max=1.0),
    seed: int | None = typer.Option(None, "--seed", help="Fix the sampler's seed."),
    stop: list[str] = typer.Option([], "--stop", help="Stop at this text (repeatable)."),
    show_stats: bool = typer.Option(False, "--stats", help="Print token counts and speed."),
) -> None:
    """Generate text from a model and stream it to the terminal."""
    runtime: Runtime = ctx.obj
    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt:
        raise InvalidInput("the prompt is empty")
    version = runtime.registry.resolve(model)
    engine = open_engine(version, runtime.blobs, runtime.settings)
    params = SamplingParams(
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=tuple(stop)
    )
    started = time.perf_counter()
    try:
        for event in engine.complete(prompt, params):
            if isinstance(event, Finish):
                sys.stdout.write("\n")
                if show_stats:
                    elapsed = time.perf_counter() - started
                    stderr().print(
                        f"{version.ref}: {event.prompt_tokens} prompt + "
                        f"{event.completion_tokens} completion tokens in {elapsed:.2f}s "
                        f"({event.completion_tokens / elapsed:.1f} tok/s), "
                        f"finish: {event.reason}"
                    )
            else:
                sys.stdout.write(event.text)
                sys.stdout.flush()
    finally:
        engine.close()
