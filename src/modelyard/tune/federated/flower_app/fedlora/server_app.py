"""The ServerApp: FedAvg (or FedProx) over the LoRA adapter arrays, weighted by each site's
``num-examples``, for ``rounds`` rounds; then the final adapter (``out``, an ``.npz``) and a
report (``report``, JSON): per round, the sites that replied with their metrics and the
sites that did not (a timeout, an error reply).

Runs in the Flower venv: imports only flwr, numpy and the standard library. Files are
written whole or not at all (temporary file beside the target, fsync, rename), so a caller
that finds them knows the run finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, FedProx

SITE_RECORD = "site"
"""The reply's ConfigRecord carrying the site's strings (a MetricRecord holds numbers only)."""
WEIGHT_KEY = "num-examples"
STRATEGIES = ("fedavg", "fedprox")

app = ServerApp()


class RoundLog:
    """What each round sent and got back, kept by the strategy as the rounds run."""

    def __init__(self) -> None:
        self.sent: dict[int, list[int]] = {}
        self.replies: dict[int, list[dict[str, Any]]] = {}
        self.errors: dict[int, dict[int, str]] = {}
        self.names: dict[int, str] = {}

    def record_sent(self, server_round: int, messages: list[Message]) -> None:
        self.sent[server_round] = sorted(m.metadata.dst_node_id for m in messages)

    def record_replies(self, server_round: int, replies: list[Message]) -> None:
        got: list[dict[str, Any]] = []
        errors: dict[int, str] = {}
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                errors[node] = str(msg.error.reason)
                continue
            entry = _reply_entry(msg)
            self.names[node] = str(entry["site"])
            got.append(entry)
        self.replies[server_round] = sorted(got, key=lambda e: str(e["site"]))
        self.errors[server_round] = errors

    def report(self) -> list[dict[str, Any]]:
        """Per round: ``replied`` (site metrics) and ``missing`` (no usable reply)."""
        rounds = []
        for server_round in sorted(self.sent):
            replied = self.replies.get(server_round, [])
            answered = {e["node-id"] for e in replied}
            errors = self.errors.get(server_round, {})
            missing = [
                {
                    "site": self.names.get(node),
                    "node-id": node,
                    "reason": errors.get(node, "no reply within the round timeout"),
                }
                for node in self.sent[server_round]
                if node not in answered
            ]
            rounds.append({"round": server_round, "replied": replied, "missing": missing})
        return rounds


def number(value: object) -> float:
    """A metric that must be a single number (a MetricRecord may also hold lists)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _reply_entry(msg: Message) -> dict[str, Any]:
    """One site's reply as the report states it: name, examples, data digest, loss."""
    metrics = next(iter(msg.content.metric_records.values()))
    strings = msg.content.config_records.get(SITE_RECORD, ConfigRecord())
    return {
        "site": str(strings.get("site", f"node-{msg.metadata.src_node_id}")),
        "node-id": msg.metadata.src_node_id,
        "num-examples": int(number(metrics[WEIGHT_KEY])),
        "dataset-sha256": str(strings.get("dataset-sha256", "")),
        "train-loss": number(metrics["train-loss"]) if "train-loss" in metrics else None,
    }


class Recording(FedAvg):
    """FedAvg that also fills a RoundLog: which sites each round asked, and what came back."""

    round_log: RoundLog

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self.round_log.record_sent(server_round, messages)
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        got = list(replies)
        self.round_log.record_replies(server_round, got)
        return super().aggregate_train(server_round, got)


class RecordingFedProx(Recording, FedProx):
    """FedProx (sends ``proximal-mu``; the sites add the proximal term) with the RoundLog."""


def make_strategy(cfg: dict[str, Any], round_log: RoundLog) -> Recording:
    """The strategy the run config names, with the quorum (``min-sites``) it accepts."""
    name = str(cfg["strategy"])
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    min_sites = int(cfg["min-sites"])
    common: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": min_sites,
        "min_available_nodes": min_sites,
        "weighted_by_key": WEIGHT_KEY,
    }
    strategy = (
        RecordingFedProx(proximal_mu=float(cfg["proximal-mu"]), **common)
        if name == "fedprox"
        else Recording(**common)
    )
    strategy.round_log = round_log
    return strategy


def load_adapter(path: str) -> dict[str, np.ndarray]:
    """The adapter arrays of an ``.npz``, sorted by name."""
    with np.load(path, allow_pickle=False) as npz:
        return {key: np.asarray(npz[key]) for key in sorted(npz.files)}


def write_atomic(path: str, write: Callable[[Any], None]) -> None:
    """``write(file)`` into a temporary file beside ``path``, fsync, then rename over it."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def final_adapter(result_arrays: ArrayRecord | None, initial: dict[str, np.ndarray]) -> Any:
    """The aggregated arrays in the initial adapter's keys and dtypes (the initial adapter
    when no round produced an aggregate)."""
    if not result_arrays:
        return dict(initial)
    return {key: result_arrays[key].numpy().astype(initial[key].dtype) for key in initial}


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = dict(context.run_config)
    for key in ("init", "out", "report"):
        if not str(cfg.get(key, "")):
            raise ValueError(f"run config {key!r} is required (a file path)")
    initial = load_adapter(str(cfg["init"]))
    round_log = RoundLog()
    strategy = make_strategy(cfg, round_log)
    mu = float(cfg["proximal-mu"]) if str(cfg["strategy"]) == "fedprox" else 0.0
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord({key: Array(value) for key, value in initial.items()}),
        num_rounds=int(cfg["rounds"]),
        timeout=float(cfg["round-timeout"]),
        train_config=ConfigRecord({"proximal-mu": mu}),
    )
    final = final_adapter(result.arrays, initial)
    write_atomic(str(cfg["out"]), lambda fh: np.savez(fh, allow_pickle=False, **final))
    report = {
        "strategy": str(cfg["strategy"]),
        "proximal-mu": mu,
        "rounds-planned": int(cfg["rounds"]),
        "min-sites": int(cfg["min-sites"]),
        "rounds": round_log.report(),
    }
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    write_atomic(str(cfg["report"]), lambda fh: fh.write(text.encode("utf-8")))
