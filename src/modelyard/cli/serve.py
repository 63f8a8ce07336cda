"""``modelyard serve``: the OpenAI-compatible gateway.

On first start (an empty registry) it imports the bundled models (:mod:`modelyard.intake.bundled`)
and says what each is for; it creates an admin key when there is none, printing it once (it is
stored only as a hash and never logged).

``--workers N`` runs N gateway processes on the one socket this command binds (uvicorn's
multi-process supervisor; each process builds its app with :func:`gateway_process_app`). The
first-run preparation happens once, here, before they start. Each process has its own engine
workers; they share the database, Redis (rate limits and budgets: required) and the home.
"""

from __future__ import annotations

import errno
import inspect
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import typer

from modelyard.cli.output import byte_progress, stderr, stdout
from modelyard.cli.runtime import Runtime
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, ModelyardError, Unavailable
from modelyard.governance.keys import KeyStore

if TYPE_CHECKING:
    from fastapi import FastAPI

_log = logging.getLogger(__name__)
FIRST_KEY_NAME = "admin"
PROCESS_APP = "modelyard.cli.serve:gateway_process_app"
"""What each gateway process of ``--workers N`` imports and calls to build its app."""


def _prepare(runtime: Runtime) -> None:
    console = stderr()
    if runtime.registry.is_empty():
        _import_bundled(runtime)
    keys = KeyStore(runtime.db, runtime.settings)
    if keys.count_active() == 0:
        name = FIRST_KEY_NAME
        existing = {k.name for k in keys.list()}
        suffix = 1
        while name in existing:
            suffix += 1
            name = f"{FIRST_KEY_NAME}-{suffix}"
        user = runtime.operator.actor
        _, plaintext = keys.create(name, admin=True, created_by=user, actor=user)
        console.print(
            f"created admin key {name!r}; it is shown once, here, and stored only as a hash:"
        )
        stdout().print(f"\n    {plaintext}\n", markup=False, highlight=False)


def _import_bundled(runtime: Runtime) -> None:
    """First run (an empty registry): import the bundled models, each placed in production
    (recorded as a transition), and say what each is for and how to add a bigger model."""
    from modelyard.errors import ModelyardError
    from modelyard.intake.bundled import BUNDLED, import_one

    console = stderr()
    console.print("registry is empty: importing the bundled models…")
    imported = []
    with byte_progress() as progress:
        for spec in BUNDLED:
            try:
                version, _ = import_one(runtime.registry, runtime.settings, spec, progress=progress)
            except ModelyardError:
                console.print(
                    f"importing {spec.name} failed; once fixed, `modelyard models import "
                    "--bundled` imports the bundled models still missing",
                    markup=False,
                )
                raise
            imported.append((version.ref, spec))
    width = max(len(ref) for ref, _ in imported)
    lines = [f"imported {len(imported)} bundled models, placed in production:"]
    lines += [f"  {ref:<{width}}  {spec.purpose}: {spec.title}" for ref, spec in imported]
    lines += [
        "They are small, for trying modelyard out. To serve a bigger instruct GGUF you have:",
        "  modelyard models import ./model.gguf --name NAME",
        '  modelyard models promote NAME@1 --to production --reason "…"',
        _policy_line(runtime),
        "The console is at /console: `modelyard operators add NAME --roles admin` makes a login.",
    ]
    console.print("\n".join(lines), markup=False, highlight=False)


def _policy_line(runtime: Runtime) -> str:
    from modelyard.governance.policy import find_policy_file

    found = find_policy_file(runtime.settings)
    if found is None:
        return "No policy file: promotions into approved/production need --override-no-policy."
    return f"Promotions follow the policy in {found} (each gate explained in its comments)."


def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="0 picks a free port."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=64,
        help="Gateway processes sharing the port, each with its own engine workers "
        "(default: MODELYARD_SERVE_WORKERS, 1). More than one needs MODELYARD_REDIS_URL.",
    ),
) -> None:
    """Serve the OpenAI-compatible API (/v1), /healthz, /readyz and /metrics."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    runtime: Runtime = ctx.obj
    processes = workers or runtime.settings.serve_workers
    if processes > 1 and not runtime.settings.redis_url:
        raise InvalidInput(
            f"{processes} gateway processes must share rate limits and budgets: set "
            "MODELYARD_REDIS_URL (without it each process would grant every budget again)",
            param="workers",
        )
    # Bound first (a taken port fails before any model is imported) and by this process, so
    # that --port 0 names the port it really got; it listens only once the app has started.
    sock = _bind(host, port)
    try:
        _prepare(runtime)
        settings = runtime.settings
        runtime.close()
        if processes == 1:
            _serve_one(settings, host, sock)
        else:
            _serve_many(settings, host, sock, processes)
    finally:
        sock.close()


def _serve_one(settings: Settings, host: str, sock: socket.socket) -> None:
    import uvicorn

    from modelyard.gateway.app import create_app

    app = create_app(settings)
    stderr().print(app.state.gateway.workers.describe(), markup=False)
    _say_url(host, sock)
    uvicorn.Server(_uvicorn_config(app, host, sock)).run(sockets=[sock])


def _serve_many(settings: Settings, host: str, sock: socket.socket, processes: int) -> None:
    """``processes`` gateway processes accepting on ``sock``; SIGTERM or SIGINT stops them
    all, each gracefully (its requests finish, its engine workers stop). A process that
    dies is replaced; one that cannot start stops them all (exit 3)."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = _uvicorn_config(PROCESS_APP, host, sock, factory=True, workers=processes)
    stderr().print(
        f"{processes} gateway processes on {settings.resolved_database_url.split(':')[0]}, "
        "each with its own engine workers",
        markup=False,
    )
    _say_url(host, sock)
    extra: dict[str, Any] = {}
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.36
        extra["target"] = uvicorn.Server(config).run
    supervisor = Multiprocess(config, sockets=[sock], **extra)
    supervisor.run()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise Unavailable("a gateway process could not start: its error is in the log above")


def gateway_process_app() -> FastAPI:
    """The app of one ``--workers`` gateway process: the settings from the environment, as
    the command read them; its own database connections, audit log and engine workers.

    A failure here ends the process with uvicorn's start-up failure status, on which the
    supervisor stops them all (anything else it would start again, and fail again)."""
    from uvicorn.config import STARTUP_FAILURE

    from modelyard.gateway.app import create_app

    try:
        app = create_app(Settings())
    except ModelyardError as exc:
        stderr().print(f"error: gateway process {os.getpid()}: {exc.message}", markup=False)
        raise SystemExit(STARTUP_FAILURE) from exc
    except Exception as exc:  # a bug: its traceback, then the same stop
        _log.exception("gateway process %d could not start", os.getpid())
        raise SystemExit(STARTUP_FAILURE) from exc
    stderr().print(
        f"gateway process {os.getpid()}: {app.state.gateway.workers.describe()}", markup=False
    )
    return app


def _uvicorn_config(app: Any, host: str, sock: socket.socket, **options: Any) -> Any:
    import uvicorn

    from modelyard.gateway.log_redaction import logging_config

    return uvicorn.Config(
        app,
        host=host,
        port=sock.getsockname()[1],
        # httptools (C) parses and frames HTTP with less CPU per streamed chunk than h11;
        # header limits are ours (431 from the app). The loop stays asyncio's: engine
        # workers are started with user/group switching, which uvloop does not offer.
        http="httptools",
        loop="asyncio",
        log_level="info",
        # every handler redacts credentials (query strings, bearer tokens, keys)
        log_config=logging_config(),
        timeout_graceful_shutdown=5,
        **options,
    )


def _say_url(host: str, sock: socket.socket) -> None:
    stderr().print(
        f"modelyard gateway on {_url(host, sock.getsockname()[1])}/v1",
        markup=False,
        highlight=False,
    )


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening, not inherited by workers)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc}", param="host") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        error = Conflict if exc.errno == errno.EADDRINUSE else InvalidInput
        raise error(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
