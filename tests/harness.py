"""Test harness shared across areas: the real ``modelyard`` command in a subprocess, a real
``modelyard serve`` gateway in a subprocess, and an ASGI app served by uvicorn in a thread.

Servers always bind port 0 themselves and report the port they got (``modelyard serve --port 0``
prints ``modelyard gateway on http://HOST:PORT/v1``): no test picks a "free" port that another
process could take before the server binds it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

SERVE_URL_LINE = re.compile(r"modelyard gateway on (http://\S+)/v1")
SERVE_START_DEADLINE_S = 300.0
"""Generous: a first ``serve`` imports the bundled models before it prints its URL."""


def run_modelyard(home: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """``python -m modelyard ARGS`` with ``MODELYARD_HOME=home`` and the default database."""
    env = {**os.environ, "MODELYARD_HOME": str(home), "COLUMNS": "200"}
    env.pop("MODELYARD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class CLI:
    """The real command in a subprocess; ``ok=True`` asserts exit code 0."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = run_modelyard(self.home, *args)
        if ok:
            assert result.returncode == 0, result.stderr
        return result


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and a free port; yields ``http://127.0.0.1:PORT``."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serve_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``modelyard serve`` on ``home``: this one, without a database URL
    (the home's SQLite) unless ``extra`` names one."""
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    env.pop("MODELYARD_DATABASE_URL", None)
    return {**env, **(extra or {})}


def start_gateway(
    home: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    stdout: Path | int | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start ``modelyard serve --port 0`` on ``home`` (environment: ``serve_env(home, env)``)
    and wait until it answers ``/healthz``; returns the process and ``http://127.0.0.1:PORT``.

    Its stderr is written to ``log``, from which the URL it printed is read. Its stdout (the
    access log and a first run's admin key) goes to the same ``log`` when ``stdout`` is None,
    to that file when it is a path, else to ``subprocess.PIPE`` or ``DEVNULL`` as given
    (a pipe must be read by the caller, see ``drain``)."""
    with log.open("w") as err:
        if stdout is None:
            proc = _popen_serve(home, env, err, subprocess.STDOUT)
        elif isinstance(stdout, Path):
            with stdout.open("w") as out:
                proc = _popen_serve(home, env, out, err)
        else:
            proc = _popen_serve(home, env, stdout, err)
    try:
        url = _wait_for_url(proc, log)
        _wait_healthy(proc, log, url)
    except BaseException:
        stop_gateway(proc)
        raise
    return proc, url


def _popen_serve(
    home: Path, env: Mapping[str, str] | None, stdout: IO[str] | int, stderr: IO[str] | int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modelyard", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=serve_env(home, env),
        stdout=stdout,
        stderr=stderr,
        text=True,
    )


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _wait_for_url(proc: subprocess.Popen[str], log: Path) -> str:
    deadline = time.monotonic() + SERVE_START_DEADLINE_S
    while True:
        if match := SERVE_URL_LINE.search(log.read_text(errors="replace")):
            return match.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"modelyard serve exited ({proc.returncode}): {_log_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"modelyard serve printed no URL: {_log_tail(log)}")
        time.sleep(0.1)


def _wait_healthy(proc: subprocess.Popen[str], log: Path, url: str) -> None:
    deadline = time.monotonic() + SERVE_START_DEADLINE_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"modelyard serve exited ({proc.returncode}): {_log_tail(log)}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"modelyard serve did not become healthy: {_log_tail(log)}")
        time.sleep(0.2)


def stop_gateway(
    proc: subprocess.Popen[str], timeout: float = 30, *, drained: threading.Thread | None = None
) -> None:
    """SIGTERM (a graceful shutdown that stops its engine workers), SIGKILL after ``timeout``;
    then the thread that ``drain`` started, if any, reaches the pipe's end, and the pipe is
    closed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if drained is not None:
        drained.join(timeout=timeout)
        assert not drained.is_alive(), "the server's stdout did not end"
    if proc.stdout is not None:
        proc.stdout.close()


@contextmanager
def serving_gateway(
    home: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    stdout: Path | int | None = None,
) -> Iterator[str]:
    """``start_gateway`` for the length of a ``with`` block; yields ``http://127.0.0.1:PORT``."""
    proc, url = start_gateway(home, log, env, stdout=stdout)
    try:
        yield url
    finally:
        stop_gateway(proc)


def drain(proc: subprocess.Popen[str], into: Path) -> threading.Thread:
    """Copy a gateway's stdout pipe to ``into`` line by line (flushed, so tests can read the
    access log), in a daemon thread, so that a full pipe never blocks the server."""

    def copy() -> None:
        assert proc.stdout is not None
        with into.open("a") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread
