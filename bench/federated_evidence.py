"""Federated tuning evidence: local-only, federated and central adapters on the help-desk demo.

One run, the default model (Gemma 3 270M Q4_K_M), a fresh MODELYARD_HOME:

1. The demo's 242 training tickets, split into three sites with different ticket mixes
   (``examples/tune-demo/split_sites.py``: north mostly network/account, south billing/hardware,
   east software).
2. **Local only:** one ``tune lora`` per site on its own rows, ``--steps`` steps each.
3. **Federated:** ``tune federated`` over the three sites (Flower: a SuperLink and one
   SuperNode per site), ``--rounds`` rounds of ``--steps / --rounds`` steps per site, so each
   site trains as many steps as its local-only adapter.
4. **Central (the upper bound):** one ``tune lora`` on the pooled rows, ``--steps`` steps
   (as many as each site trained).
5. Each adapter, merged and registered, is scored with ``eval run --metric exact`` on the 40
   pooled held-out tickets (``eval-suite.jsonl``): exact match with its bootstrap 95 % CI.

Every run uses rank 8, alpha 16, lr 1e-3, batch 8, sequences up to 64 tokens, the last
``--layers`` blocks.

    .venv/bin/python bench/federated_evidence.py [--steps 96] [--rounds 8] [--layers 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "tune-demo"
SITES = ("north", "south", "east")
BASE = "gemma3-270m"


def modelyard(home: Path, *args: str) -> Any:
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    env.pop("MODELYARD_DATABASE_URL", None)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"modelyard {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    print(f"  {' '.join(args[:2])} … {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return json.loads(result.stdout)


def local(args: argparse.Namespace, steps: int) -> list[str]:
    """``tune lora`` for exactly ``steps`` steps (enough epochs that --max-steps binds)."""
    return ["--max-steps", str(steps), "--epochs", "100", "--threads", str(args.threads)]


def common(args: argparse.Namespace) -> list[str]:
    return [
        "--rank", "8", "--alpha", "16", "--lr", "1e-3", "--batch-size", "8",
        "--max-seq-len", "64", "--layers", str(args.layers),
    ]  # fmt: skip


def score(home: Path, model: str) -> dict[str, Any]:
    run = modelyard(
        home, "eval", "run", "--model", model, "--data", str(DEMO / "eval-suite.jsonl"),
        "--metric", "exact", "--max-tokens", "24", "--suite", "helpdesk-pooled",
    )  # fmt: skip
    return {"model": model, "exact": run["score"], "ci": [run["ci_low"], run["ci_high"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.steps % args.rounds:
        sys.exit("--steps must be a multiple of --rounds")
    home = Path(tempfile.mkdtemp(prefix="fed-evidence-")) / "home"
    subprocess.run(
        [sys.executable, str(DEMO / "split_sites.py")], check=True, stdout=subprocess.DEVNULL
    )
    modelyard(home, "models", "import", "--default")
    results: dict[str, Any] = {"sites": {}, "times_s": {}}
    for site in SITES:
        began = time.perf_counter()
        modelyard(
            home, "tune", "lora", "--base", BASE, "--name", f"local-{site}",
            "--data", str(DEMO / "sites" / f"{site}.jsonl"), *local(args, args.steps),
            *common(args),
        )  # fmt: skip
        results["times_s"][f"local-{site}"] = round(time.perf_counter() - began)
    began = time.perf_counter()
    sites_args = [a for s in SITES for a in ("--data", f"{s}={DEMO / 'sites' / f'{s}.jsonl'}")]
    federated = modelyard(
        home, "tune", "federated", "--base", BASE, "--name", "federated",
        "--sites", ",".join(SITES), *sites_args, "--rounds", str(args.rounds),
        "--steps-per-round", str(args.steps // args.rounds), "--threads", "1", *common(args),
    )  # fmt: skip
    results["times_s"]["federated"] = round(time.perf_counter() - began)
    results["sites"] = federated["version"]["lineage"]["sites"]
    began = time.perf_counter()
    modelyard(
        home, "tune", "lora", "--base", BASE, "--name", "central",
        "--data", str(DEMO / "train.jsonl"), *local(args, args.steps),
        *common(args),
    )  # fmt: skip
    results["times_s"]["central"] = round(time.perf_counter() - began)
    names = [BASE, *(f"local-{s}" for s in SITES), "federated", "central"]
    results["scores"] = [score(home, name) for name in names]
    results["steps"] = {
        name: modelyard(home, "models", "show", name)["lineage"].get("steps")
        for name in names[1:]
        if name != "federated"
    }
    results["settings"] = vars(args)
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'adapter':<16} {'exact':>6}  95% CI")
    for row in results["scores"]:
        low, high = row["ci"]
        print(f"{row['model']:<16} {row['exact']:>6.3f}  {low:.3f} to {high:.3f}")


if __name__ == "__main__":
    main()
