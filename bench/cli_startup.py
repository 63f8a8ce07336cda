"""How long ``modelyard`` takes to start: ``--help``, a group's ``--help`` and ``models list``.

Each command runs ``--runs`` times (default 5) in a fresh process against a scratch home with
one small model registered; the report gives the median and the fastest run, in seconds.
``--src DIR`` measures another checkout's ``src`` (for a before/after comparison).

    .venv/bin/python bench/cli_startup.py [--runs 5] [--src /path/to/other/src] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (
    ("modelyard --help", ["--help"]),
    ("modelyard models --help", ["models", "--help"]),
    ("modelyard models list", ["models", "list"]),
    ("modelyard models list --json", ["models", "list", "--json"]),
)


def _env(home: Path, src: Path) -> dict[str, str]:
    env = {**os.environ, "MODELYARD_HOME": str(home), "PYTHONPATH": str(src)}
    env.pop("MODELYARD_DATABASE_URL", None)
    return env


def _run(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def measure(src: Path, runs: int) -> dict[str, dict[str, float]]:
    sys.path.insert(0, str(ROOT))
    from tests.factories import write_tiny_gguf

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        env = _env(home, src)
        model = write_tiny_gguf(Path(scratch) / "tiny.gguf")
        subprocess.run(
            [sys.executable, "-m", "modelyard", "models", "import", str(model)],
            env=env,
            capture_output=True,
            check=True,
        )
        results = {}
        for label, args in COMMANDS:
            _run(args, env)  # warm the page cache and the bytecode cache
            times = [_run(args, env) for _ in range(runs)]
            results[label] = {"median_s": statistics.median(times), "min_s": min(times)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    results = measure(options.src.resolve(), options.runs)
    if options.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'command':32} {'median s':>9} {'min s':>7}   ({options.runs} runs, {options.src})")
    for label, row in results.items():
        print(f"{label:32} {row['median_s']:9.3f} {row['min_s']:7.3f}")


if __name__ == "__main__":
    main()
