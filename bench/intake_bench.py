"""Time the default model's intake: the full import, and the GGUF metadata parse on its own.

    .venv/bin/python bench/intake_bench.py

Uses a fresh temporary MODELYARD_HOME; prints one JSON object.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.intake.default_model import import_default
from modelyard.intake.gguf_reader import read_gguf_metadata
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        settings.ensure_home()
        db = Database(settings.resolved_database_url)
        registry = Registry(db, open_blob_store(settings))
        started = time.perf_counter()
        version, _ = import_default(registry, settings)
        import_s = time.perf_counter() - started
        path = registry.blobs.path_for(version.digest)
        started = time.perf_counter()
        read_gguf_metadata(path, timeout_s=60, memory_mb=2048)
        parse_s = time.perf_counter() - started
        db.close()
    print(
        json.dumps(
            {
                "model": version.ref,
                "size_bytes": version.size_bytes,
                "import_default_s": round(import_s, 2),
                "gguf_metadata_parse_s": round(parse_s, 2),
                "import_mib_per_s": round(version.size_bytes / 2**20 / import_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
