"""Real ``modelyard serve`` processes for the governance end-to-end tests (tests/harness.py)."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness import start_gateway, stop_gateway

SERVER_ENV = {
    "MODELYARD_N_THREADS": "1",
    "MODELYARD_WORKER_THREADS": "1",
    "MODELYARD_WORKER_CTX_PER_SLOT": "512",
    "MODELYARD_WORKER_SLOTS": "2",
}


@dataclass
class Proc:
    proc: subprocess.Popen[str]
    url: str
    out: Path
    err: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def stop(self) -> None:
        stop_gateway(self.proc)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def start(home: Path, name: str, env_extra: dict[str, str]) -> Proc:
    """A gateway on ``home`` (its SQLite unless ``env_extra`` names a database); its stdout and
    stderr are ``<name>.stdout`` and ``<name>.stderr`` beside the home."""
    out, err = home.parent / f"{name}.stdout", home.parent / f"{name}.stderr"
    proc, url = start_gateway(home, err, {**SERVER_ENV, **env_extra}, stdout=out)
    return Proc(proc, url, out, err)
