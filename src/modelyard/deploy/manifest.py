"""Export every served alias and version with hashes, engines, library versions, policy and
limits: enough to rebuild the same service on another machine (``deploy apply``).

The document is plain data (dumped as YAML); only ``exported_at`` changes between two exports
of an unchanged deployment.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import yaml
from sqlalchemy import select

from modelyard import __version__
from modelyard.catalog.advisories import active_for
from modelyard.catalog.aliases import current_state
from modelyard.catalog.lifecycle import Stage, states_of
from modelyard.catalog.registry import Registry, version_record
from modelyard.config import Settings
from modelyard.errors import InvalidInput
from modelyard.governance.policy import Policy
from modelyard.store.tables import AliasRow, ModelVersionRow

MANIFEST_KIND = "modelyard-deployment"
MANIFEST_FORMAT = 1
SERVED_STAGES = (Stage.APPROVED, Stage.PRODUCTION, Stage.DEPRECATED)
LIBRARIES = ("llama-cpp-python", "gguf", "sqlalchemy", "fastapi", "transformers", "torch")
ENGINES = {"gguf": "llama.cpp", "safetensors": "transformers"}


def _library(name: str) -> str | None:
    try:
        return package_version(name)
    except PackageNotFoundError:
        return None


def runtime_versions() -> dict[str, Any]:
    libraries = {name: _library(name) for name in LIBRARIES}
    return {
        "modelyard": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "libraries": {k: v for k, v in libraries.items() if v is not None},
    }


def build_manifest(registry: Registry, settings: Settings, policy: Policy) -> dict[str, Any]:
    with registry.db.session() as session:
        rows = list(session.scalars(select(ModelVersionRow)))
        states = states_of(session, [r.id for r in rows])
        advisories = active_for(session, [r.id for r in rows])
        alias_names = list(session.scalars(select(AliasRow.name).order_by(AliasRow.name)))
        aliases = [s for s in (current_state(session, n) for n in alias_names) if s is not None]
        wanted = {a.target for a in aliases} | {a.canary for a in aliases if a.canary}
        models: dict[str, Any] = {}
        for row in rows:
            info = states[row.id]
            version = version_record(row)
            if info.stage not in SERVED_STAGES and version.ref not in wanted:
                continue
            models[version.ref] = {
                "name": version.name,
                "version": version.version,
                "digest": version.digest,
                "format": version.format,
                "engine": ENGINES.get(version.format, version.format),
                "size_bytes": version.size_bytes,
                "files": [
                    {"path": f.path, "sha256": f.sha256, "size_bytes": f.size_bytes}
                    for f in version.files
                ],
                "stage": info.stage.value,
                "sunset_at": info.sunset_at.isoformat() if info.sunset_at else None,
                "replacement": info.replacement,
                "intended_use": info.intended_use,
                "licence": version.metadata.get("license", "unknown"),
                "origin": version.origin,
                "parent": version.parent,
                "lineage": version.lineage,
                "source": version.source_path,
                "created_by": version.created_by,
                "metadata": version.metadata,
                "advisories": [
                    {"id": a.id, "severity": a.severity, "action": a.action, "summary": a.summary}
                    for a in advisories[row.id]
                ],
            }
    return {
        "kind": MANIFEST_KIND,
        "format": MANIFEST_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runtime": runtime_versions(),
        "models": dict(sorted(models.items())),
        "aliases": {
            a.name: {"target": a.target, "canary": a.canary, "canary_weight": a.weight}
            for a in aliases
        },
        "policy": {
            "source": policy.source,
            "sha256": policy.sha256,
            "rules": policy.model_dump(mode="json", exclude={"source", "sha256"}),
        },
        "limits": {"n_ctx": settings.n_ctx, "n_threads": settings.n_threads},
    }


def dump_manifest(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)


def load_manifest(text: str, *, source: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or document.get("kind") != MANIFEST_KIND:
        raise InvalidInput(
            f"{source} is not a modelyard deployment manifest (kind: {MANIFEST_KIND})"
        )
    if document.get("format") != MANIFEST_FORMAT:
        raise InvalidInput(f"{source}: unsupported manifest format {document.get('format')!r}")
    for key in ("models", "aliases"):
        if not isinstance(document.get(key) or {}, dict):
            raise InvalidInput(f"{source}: {key!r} must be a mapping")
    return document
