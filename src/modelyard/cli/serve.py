"""``modelyard serve``: make sure the default model is there, then serve.

Until the gateway lands this runs a one-shot check instead: the default model is imported
if the registry is empty, loaded with the llama.cpp engine, and asked for a few tokens.
"""

from __future__ import annotations

import time

import typer

from modelyard.cli.output import byte_progress, stderr
from modelyard.cli.runtime import Runtime
from modelyard.engines.base import SamplingParams, collect
from modelyard.engines.loader import open_engine
from modelyard.intake.default_model import import_default


def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
) -> None:
    """Serve models (the HTTP gateway is not built yet: runs a one-shot engine check)."""
    runtime: Runtime = ctx.obj
    console = stderr()
    if runtime.registry.is_empty():
        console.print("registry is empty: importing the bundled default model…")
        with byte_progress() as progress:
            version, _ = import_default(runtime.registry, runtime.settings, progress=progress)
    else:
        version = runtime.registry.list_versions()[-1]
    console.print(f"loading {version.ref} with llama.cpp…")
    started = time.perf_counter()
    engine = open_engine(version, runtime.blobs, runtime.settings)
    loaded = time.perf_counter()
    text, finish = collect(
        engine.complete("The capital of France is", SamplingParams(max_tokens=8, temperature=0))
    )
    engine.close()
    console.print(
        f"one-shot check passed: loaded in {loaded - started:.2f}s, generated "
        f"{finish.completion_tokens} tokens: {text!r}"
    )
    console.print(
        f"[yellow]the HTTP gateway ({host}:{port}) is not built yet; "
        "use `modelyard run MODEL PROMPT` meanwhile.[/]"
    )
