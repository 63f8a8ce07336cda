"""The engine command that deploy/compose.yaml and the Helm chart's default engine run, run for
real: the model file written by deploy/docker/bundled_gguf.py (what the engine-model step and
the chart's init container do), served by the pinned llama-server with those arguments and the
key in LLAMA_API_KEY. Only the listening address (a Unix socket here), the thread count and the
context size (smaller, for this machine) are changed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import httpx
import pytest
import yaml

from modelyard.config import Settings
from modelyard.engines.binary import find_llama_server

pytestmark = pytest.mark.slow  # starts the real model

ROOT = Path(__file__).resolve().parents[2]
KEY = "engine-key-3f9"


def compose_engine() -> tuple[list[str], str]:
    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    return [str(a) for a in services["engine"]["command"]], "gemma3-270m"


def helm_engine() -> tuple[list[str], str]:
    with helm_python.Chart.load(ROOT / "deploy" / "helm" / "modelyard") as chart:
        (engine,) = chart.values["engines"]
    return [str(a) for a in engine["args"]], engine["bundledModel"]


def for_this_machine(args: list[str], models: Path, socket: Path) -> list[str]:
    """Defaults substituted (``${X:-d}`` → d), /models → ``models``, the socket for host:port."""
    out: list[str] = []
    replaced = {"--host": str(socket), "--threads": "1", "--ctx-size": "2048"}
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        option = args[index - 1] if index else ""
        if arg == "--port":
            skip = True
            continue
        value = arg.split(":-", 1)[1].rstrip("}") if arg.startswith("${") else arg
        out.append(replaced.get(option, value.replace("/models/", f"{models}/")))
    return out


def load_bundled_gguf() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bundled_gguf", ROOT / "deploy" / "docker" / "bundled_gguf.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder an engine container mounts at /models, filled as the image fills it."""
    folder = tmp_path_factory.mktemp("models")
    assert load_bundled_gguf().main(["gemma3-270m", str(folder)]) == 0
    return folder


@pytest.fixture
def engine(request: pytest.FixtureRequest, models: Path, tmp_path: Path) -> Iterator[httpx.Client]:
    args, bundled = request.param()
    assert bundled == "gemma3-270m"
    socket = tmp_path / "engine.sock"
    binary = find_llama_server(Settings())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LLAMA_API_KEY": KEY}
    log = (tmp_path / "engine.log").open("w")
    process = subprocess.Popen(
        [str(binary.path), *for_this_machine(args, models, socket)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url="http://engine")
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "engine.log").read_text()[-2000:]
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the engine did not become healthy"
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.parametrize(
    "engine", [compose_engine, helm_engine], indirect=True, ids=["compose", "helm"]
)
def test_engine_serves_the_default_model_behind_its_key(engine: httpx.Client) -> None:
    body = {"model": "gemma3-270m", "prompt": "The capital of France is", "max_tokens": 2}
    assert engine.post("/v1/completions", json=body).status_code == 401
    answer = engine.post(
        "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["text"]
    models = engine.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert "gemma3-270m" in [m["id"] for m in models["data"]]  # --alias: the served model id
