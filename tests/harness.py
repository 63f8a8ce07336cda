"""Test harness shared across areas: the real ``modelyard`` command in a subprocess, and an
ASGI app served by uvicorn on a free loopback port in a thread."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn


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
