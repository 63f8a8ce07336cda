"""``modelyard serve``: the OpenAI-compatible gateway.

On first start it imports the bundled default model when the registry is empty, and creates
an admin key when there is none, printing it once (it is stored only as a hash and never
logged).
"""

from __future__ import annotations

import os

import typer

from modelyard.cli.output import byte_progress, stderr, stdout
from modelyard.cli.runtime import Runtime
from modelyard.governance.keys import KeyStore
from modelyard.intake.default_model import import_default
from modelyard.intake.importer import current_user

FIRST_KEY_NAME = "admin"


def _prepare(runtime: Runtime) -> None:
    console = stderr()
    if runtime.registry.is_empty():
        console.print("registry is empty: importing the bundled default model…")
        with byte_progress() as progress:
            version, _ = import_default(runtime.registry, runtime.settings, progress=progress)
        _place_in_production(runtime, version.ref)
        console.print(f"imported {version.ref}")
    keys = KeyStore(runtime.db)
    if keys.count_active() == 0:
        name = FIRST_KEY_NAME
        existing = {k.name for k in keys.list()}
        suffix = 1
        while name in existing:
            suffix += 1
            name = f"{FIRST_KEY_NAME}-{suffix}"
        _, plaintext = keys.create(name, admin=True, created_by=current_user())
        console.print(
            f"created admin key {name!r}; it is shown once, here, and stored only as a hash:"
        )
        stdout().print(f"\n    {plaintext}\n", markup=False, highlight=False)


def _place_in_production(runtime: Runtime, ref: str) -> None:
    """The bundled default is served as soon as it is imported (recorded as a transition)."""
    from modelyard.catalog.lifecycle import Stage
    from modelyard.catalog.promotion import place

    place(
        runtime.registry,
        ref,
        Stage.PRODUCTION,
        actor=current_user(),
        reason="bundled default model, placed in production by the first `modelyard serve`",
    )


def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="0 picks a free port."),
) -> None:
    """Serve the OpenAI-compatible API (/v1), /healthz, /readyz and /metrics."""
    import uvicorn

    from modelyard.gateway.app import create_app
    from modelyard.gateway.log_redaction import logging_config

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    runtime: Runtime = ctx.obj
    _prepare(runtime)
    settings = runtime.settings
    runtime.close()
    app = create_app(settings)
    stderr().print(app.state.gateway.workers.describe(), markup=False)
    stderr().print(f"modelyard gateway on http://{host}:{port}/v1")
    uvicorn.run(
        app,
        host=host,
        port=port,
        # httptools (C) parses and frames HTTP with less CPU per streamed chunk than h11;
        # header limits are ours (431 from the app). The loop stays asyncio's: engine
        # workers are started with user/group switching, which uvloop does not offer.
        http="httptools",
        loop="asyncio",
        log_level="info",
        # every handler redacts credentials (query strings, bearer tokens, keys)
        log_config=logging_config(),
        timeout_graceful_shutdown=5,
    )
