"""Time the lifecycle's per-request decision and a policy check on the default model.

    .venv/bin/python bench/lifecycle_bench.py [--requests 500] [--database-url URL]

``resolve_for_serving`` runs once per gateway request: this measures it for an alias with a
canary split, a bare name (newest production version) and ``NAME@N``, next to the plain
``Registry.resolve`` it replaces. Then a full policy check to production (licence, intake
re-hash of the 241 MiB file, four-eyes). Fresh temporary home; prints JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelyard.catalog.aliases import Aliases
from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.records import NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.catalog.serving import resolve_for_serving
from modelyard.config import Settings
from modelyard.governance.policy import parse_policy
from modelyard.intake.default_model import import_default
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database

POLICY = b"""
[policy.stages.production]
licence = true
intake = true
four_eyes = true

[policy.stages.deprecated]
licence = true
intake = true
four_eyes = true
"""


def _timed(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "mean_ms": round(statistics.fmean(samples), 3),
        "p50_ms": round(samples[len(samples) // 2], 3),
        "p95_ms": round(samples[int(len(samples) * 0.95)], 3),
    }


def _small_version(registry: Registry, name: str) -> str:
    blob = registry.blobs.write_stream([io.BytesIO(name.encode())])
    return registry.add_version(
        NewVersion(
            name=name,
            digest=blob.sha256,
            format="gguf",
            size_bytes=blob.size_bytes,
            metadata={"license": "mit"},
            files=(VersionFile(f"{name}.gguf", blob.sha256, blob.size_bytes),),
            source_path="bench",
            created_by="bench",
        )
    ).ref


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), database_url=args.database_url)
        settings.ensure_home()
        db = Database(settings.resolved_database_url)
        registry = Registry(db, open_blob_store(settings))
        default, _ = import_default(registry, settings)
        lifecycle = Lifecycle(
            registry, settings, parse_policy(POLICY, source="bench", yaml_file=False)
        )
        other = _small_version(registry, "gemma3-270m")
        lifecycle.promote(other, "production", actor="reviewer", reason="bench")
        Aliases(registry, settings).set("chat", default.ref, canary=other, weight=10, actor="bench")
        n = args.requests
        result = {
            "database": db.safe_url.split(":", 1)[0],
            "requests": n,
            "registry.resolve (alias, no lifecycle)": _timed(lambda: registry.resolve("chat"), n),
            "resolve_for_serving alias+canary": _timed(
                lambda: resolve_for_serving(registry, "chat"), n
            ),
            "resolve_for_serving bare name": _timed(
                lambda: resolve_for_serving(registry, "gemma3-270m"), n
            ),
            "resolve_for_serving NAME@N": _timed(
                lambda: resolve_for_serving(registry, default.ref), n
            ),
            "policy check: licence, intake (re-hash 241 MiB), four-eyes": _timed(
                lambda: lifecycle.check(default.ref, "deprecated", actor="reviewer"), 3
            ),
        }
        db.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
