"""The ClientApp: one site's training round. The Flower processes never import modelyard:
the round runs as ``<python> -m modelyard.tune.federated.site_round SPEC.json`` in the main
venv, and the adapter goes in and out as ``.npz`` files in the site's work directory.

Node config (``flower-supernode --node-config``): ``site`` (name), ``data`` (the site's
JSONL), ``python`` (the main venv's interpreter), ``work`` (a directory the site may write
to), ``spec`` (JSON with the fixed training settings) and optionally ``trainer-timeout``
(seconds, default a day).

Runs in the Flower venv: imports only flwr, numpy and the standard library.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

SITE_RECORD = "site"
"""The reply's ConfigRecord carrying the site's strings (a MetricRecord holds numbers only)."""
TRAINER_MODULE = "modelyard.tune.federated.site_round"
DEFAULT_TRAINER_TIMEOUT_S = 86400.0
LOG_TAIL_LINES = 20
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")

app = ClientApp()


def round_spec(node: dict[str, Any], round_dir: Path, server_round: int, mu: float) -> Path:
    """Write the trainer's SPEC.json: the node's fixed spec plus this round's paths."""
    spec = json.loads(Path(str(node["spec"])).read_text(encoding="utf-8"))
    spec.update(
        data=str(node["data"]),
        adapter_in=str(round_dir / "adapter-in.npz"),
        adapter_out=str(round_dir / "adapter-out.npz"),
        round=server_round,
        proximal_mu=mu,
        site=str(node["site"]),
    )
    path = round_dir / "spec.json"
    path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def trainer_env(python: str) -> dict[str, str]:
    """The environment for the main venv's Python: this one without the Flower venv's
    interpreter settings, the interpreter's folder first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "/usr/bin:/bin")])
    return env


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(line for line in lines[-LOG_TAIL_LINES:] if line.strip())


def run_trainer(node: dict[str, Any], spec: Path, round_dir: Path) -> None:
    """Run the round's training; raise with the log tail when it fails or overruns."""
    python = str(node["python"])
    timeout = float(node.get("trainer-timeout", DEFAULT_TRAINER_TIMEOUT_S))
    log_path = round_dir / "site_round.log"
    with log_path.open("wb") as log:
        try:
            proc = subprocess.run(
                [python, "-m", TRAINER_MODULE, str(spec)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=trainer_env(python),
                cwd=round_dir,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"site {node['site']}: training ran past {timeout:g} s\n{log_tail(log_path)}"
            ) from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"site {node['site']}: training exited with status {proc.returncode}\n"
            f"{log_tail(log_path)}"
        )


def read_outputs(round_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The trained adapter (sorted by name) and the trainer's result.json."""
    with np.load(round_dir / "adapter-out.npz", allow_pickle=False) as npz:
        arrays = {key: np.asarray(npz[key]) for key in sorted(npz.files)}
    result = json.loads((round_dir / "result.json").read_text(encoding="utf-8"))
    return arrays, result


def number(value: object) -> float:
    """A config value that must be a single number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


@app.train()
def train(msg: Message, context: Context) -> Message:
    node = dict(context.node_config)
    config = msg.content.config_records["config"]
    server_round = int(number(config["server-round"]))
    mu = number(config.get("proximal-mu", 0.0))
    round_dir = Path(str(node["work"])) / f"round-{server_round}"
    round_dir.mkdir(parents=True, exist_ok=True)
    received = msg.content.array_records["arrays"]
    inbound = {key: received[key].numpy() for key in received}
    np.savez(round_dir / "adapter-in.npz", allow_pickle=False, **inbound)
    spec = round_spec(node, round_dir, server_round, mu)
    run_trainer(node, spec, round_dir)
    arrays, result = read_outputs(round_dir)
    metrics = MetricRecord(
        {"num-examples": int(result["examples"]), "train-loss": float(result["train_loss"])}
    )
    strings = ConfigRecord({"site": str(node["site"]), "dataset-sha256": str(result["sha256"])})
    content = RecordDict(
        {
            "arrays": ArrayRecord({key: Array(value) for key, value in arrays.items()}),
            "metrics": metrics,
            SITE_RECORD: strings,
        }
    )
    return Message(content=content, reply_to=msg)
