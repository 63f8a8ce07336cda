"""Small builders for lifecycle tests: versions from in-memory bytes, evaluation evidence rows."""

from __future__ import annotations

import io
import uuid

from modelyard.catalog.records import ModelVersion, NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.store.evaluation_tables import EvalRunRow
from modelyard.store.tables import utcnow


def add_version(
    registry: Registry,
    name: str,
    *,
    created_by: str = "alice",
    licence: str | None = "apache-2.0",
    fmt: str = "gguf",
) -> ModelVersion:
    """A version whose single file is a few unique bytes in the real blob store."""
    data = f"{name}:{uuid.uuid4()}".encode()
    blob = registry.blobs.write_stream([io.BytesIO(data)])
    metadata = {"architecture": "llama", "context_length": 256}
    if licence is not None:
        metadata["license"] = licence
    return registry.add_version(
        NewVersion(
            name=name,
            digest=blob.sha256,
            format=fmt,
            size_bytes=blob.size_bytes,
            metadata=metadata,
            files=(VersionFile(f"{name}.{fmt}", blob.sha256, blob.size_bytes),),
            source_path=f"test:{name}",
            created_by=created_by,
        )
    )


def add_run(
    registry: Registry,
    version: ModelVersion,
    *,
    kind: str = "eval",
    suite: str | None = "clinic-qa",
    metric: str = "contains",
    score: float = 0.9,
    status: str = "done",
    digest: str | None = None,
) -> str:
    """One finished evaluation (or bias probe) run, written to the real eval_runs table."""
    run_id = str(uuid.uuid4())
    now = utcnow()
    with registry.db.session() as session:
        session.add(
            EvalRunRow(
                id=run_id,
                kind=kind,
                model_name=version.name,
                model_version=version.version,
                model_digest=digest or version.digest,
                suite=suite,
                metric=metric,
                data_path="pilot.jsonl",
                data_sha256="0" * 64,
                rows_total=20,
                rows_done=20,
                status=status,
                score=score,
                details={},
                config={},
                created_by="evaluator",
                created_at=now,
                finished_at=now,
            )
        )
    return run_id
