"""Real ``modelyard serve`` processes for the governance end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    url: str
    out: Path
    err: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(home: Path, name: str, env_extra: dict[str, str]) -> Proc:
    port = free_port()
    env = {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "MODELYARD_N_THREADS": "1",
        "MODELYARD_WORKER_THREADS": "1",
        "MODELYARD_WORKER_CTX_PER_SLOT": "512",
        "MODELYARD_WORKER_SLOTS": "2",
    }
    env.pop("MODELYARD_DATABASE_URL", None)  # the home's SQLite unless env_extra names one
    env.update(env_extra)
    out, err = home.parent / f"{name}.stdout", home.parent / f"{name}.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard", "serve", "--port", str(port)],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"modelyard serve exited: {err.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return Proc(proc, url, out, err)
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("modelyard serve did not become healthy")
