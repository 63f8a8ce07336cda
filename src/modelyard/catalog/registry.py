"""The model registry: register, find, list and remove versions; point aliases at them.

Versions are immutable: the registry inserts and deletes them, never updates them (an ORM
guard enforces it). Version numbers are 1, 2, 3… per name, assigned inside the inserting
transaction; a unique constraint and a retry settle two imports racing for the same number.
Registering and removing versions, and setting or deleting aliases, are audited in the same
transaction (:mod:`modelyard.catalog.audit_events`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from modelyard.catalog.aliases import Aliases
from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.lifecycle import Stage, write_transition
from modelyard.catalog.names import validate_name
from modelyard.catalog.records import Alias, ModelVersion, NewVersion, VersionFile
from modelyard.catalog.refs import ModelRef, parse_ref
from modelyard.catalog.rows import find_version, versions_of
from modelyard.config import Settings
from modelyard.errors import Conflict, NotFound, StoreFault
from modelyard.store.blobs import BlobStore
from modelyard.store.database import Database
from modelyard.store.lifecycle_tables import AliasCanaryRow
from modelyard.store.tables import (
    AliasRow,
    BlobRow,
    ModelRow,
    ModelVersionRow,
    VersionFileRow,
    utcnow,
)

ORIGINS = ("imported", "tuned", "quantized", "remote")
"""``remote``: an endpoint version (weights served elsewhere, see engines/endpoints.py)."""
_INSERT_ATTEMPTS = 5


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: ModelVersionRow, aliases: Iterable[str] = ()) -> ModelVersion:
    parent = None
    if row.parent_version_id is not None:
        parent = row.lineage_json.get("parent")
    return ModelVersion(
        name=row.model.name,
        version=row.version,
        digest=row.digest,
        format=row.format,
        size_bytes=row.size_bytes,
        metadata=dict(row.metadata_json),
        origin=row.origin,
        parent=parent or row.lineage_json.get("parent"),
        lineage=dict(row.lineage_json),
        source_path=row.source_path,
        created_by=row.created_by,
        created_at=_aware(row.created_at),
        files=tuple(VersionFile(f.path, f.blob_sha256, f.size_bytes) for f in row.files),
        aliases=tuple(sorted(aliases)),
    )


def version_record(row: ModelVersionRow, aliases: Iterable[str] = ()) -> ModelVersion:
    """The immutable record of a version row (for catalog modules working in a session)."""
    return _record(row, aliases)


def _imported(version: ModelVersion) -> dict[str, Any]:
    """The details of a ``model.import`` event."""
    return {
        "origin": version.origin,
        "format": version.format,
        "digest": version.digest,
        "size_bytes": version.size_bytes,
        "licence": version.metadata.get("license"),
        "parent": version.parent,
        "source_path": version.source_path,
    }


class Registry:
    def __init__(self, db: Database, blobs: BlobStore, settings: Settings) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        """For the audit log (the subject secret, the witness) that changes are recorded in."""

    # -- writing -------------------------------------------------------------------------

    @audited("model.import")
    def add_version(self, new: NewVersion) -> ModelVersion:
        """Register ``new`` as the next version of its name; the actor recorded is
        ``new.created_by``."""
        validate_name(new.name)
        if new.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}")
        for attempt in range(_INSERT_ATTEMPTS):
            try:
                with self.db.session() as session:
                    version = self._insert(session, new)
                    append_event(
                        session,
                        self.db,
                        self.settings,
                        "model.import",
                        new.created_by,
                        version.ref,
                        _imported(version),
                    )
                    return version
            except IntegrityError as exc:
                if attempt == _INSERT_ATTEMPTS - 1:
                    raise StoreFault(f"could not register {new.name}: {exc.orig}") from exc
        raise AssertionError("unreachable")

    def insert_version(self, session: Session, new: NewVersion) -> ModelVersion:
        """Register inside the caller's transaction (a deployment applied all at once; the
        caller records the event)."""
        validate_name(new.name)
        return self._insert(session, new)

    def _insert(self, session: Session, new: NewVersion) -> ModelVersion:
        model = session.scalar(select(ModelRow).where(ModelRow.name == new.name))
        if model is None:
            model = ModelRow(name=new.name)
            session.add(model)
            session.flush()
        parent_row = None
        if new.parent is not None:
            parent_row = self._find(session, parse_ref(new.parent))
        newest = session.scalar(
            select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model.id)
        )
        for entry in new.files:
            if session.get(BlobRow, entry.sha256) is None:
                session.add(BlobRow(sha256=entry.sha256, size_bytes=entry.size_bytes))
        lineage: dict[str, Any] = {"origin": new.origin, **new.lineage}
        if parent_row is not None:
            lineage["parent"] = f"{parent_row.model.name}@{parent_row.version}"
            lineage.setdefault("parent_digest", parent_row.digest)
        number = (newest or 0) + 1
        if new.number is not None:
            if new.number < number:
                raise Conflict(
                    f"cannot register {new.name}@{new.number}: {new.name} is already at "
                    f"version {newest}"
                )
            number = new.number
        row = ModelVersionRow(
            model_id=model.id,
            version=number,
            digest=new.digest,
            format=new.format,
            size_bytes=new.size_bytes,
            metadata_json=new.metadata,
            origin=new.origin,
            parent_version_id=parent_row.id if parent_row is not None else None,
            lineage_json=lineage,
            source_path=new.source_path,
            created_by=new.created_by,
            created_at=utcnow(),
            files=[
                VersionFileRow(path=f.path, blob_sha256=f.sha256, size_bytes=f.size_bytes)
                for f in new.files
            ],
        )
        session.add(row)
        session.flush()
        session.refresh(row)
        write_transition(
            session,
            row,
            Stage.REGISTERED,
            actor=new.created_by,
            reason=f"{new.origin} from {new.source_path}",
            initial=True,
        )
        return _record(row)

    @audited("model.remove")
    def remove(
        self, ref_text: str, *, all_versions: bool = False, actor: str
    ) -> list[ModelVersion]:
        """Remove one version (or every version of a name); free blobs nothing else uses."""
        ref = parse_ref(ref_text)
        with self.db.session() as session:
            if all_versions:
                if ref.version is not None:
                    raise Conflict("--all removes every version: give a bare name, not NAME@N")
                rows = self._versions_of(session, ref.name)
            else:
                rows = [self._find(session, ref)]
            for row in rows:
                alias_names = self._aliases_of(session, row.id) + list(
                    session.scalars(
                        select(AliasCanaryRow.alias).where(AliasCanaryRow.version_id == row.id)
                    )
                )
                if alias_names:
                    raise Conflict(
                        f"{row.model.name}@{row.version} is the target of alias "
                        f"{', '.join(sorted(alias_names))}; move or delete the alias first"
                    )
            removed = [_record(row) for row in rows]
            candidate_blobs = {f.blob_sha256 for row in rows for f in row.files}
            model = rows[0].model
            for row in rows:
                session.delete(row)
            session.flush()
            if not session.scalar(
                select(func.count())
                .select_from(ModelVersionRow)
                .where(ModelVersionRow.model_id == model.id)
            ):
                session.delete(model)
            freed = self._unreferenced(session, candidate_blobs)
            for sha in freed:
                session.delete(session.get(BlobRow, sha))
            append_event(
                session,
                self.db,
                self.settings,
                "model.remove",
                actor,
                removed[0].ref if len(removed) == 1 and not all_versions else ref.name,
                {
                    "versions": [{"ref": v.ref, "digest": v.digest} for v in removed],
                    "blobs_freed": len(freed),
                },
            )
        for sha in freed:
            self.blobs.delete(sha)
        return removed

    def _unreferenced(self, session: Session, hashes: set[str]) -> set[str]:
        if not hashes:
            return set()
        still_used = set(
            session.scalars(
                select(VersionFileRow.blob_sha256).where(VersionFileRow.blob_sha256.in_(hashes))
            )
        )
        return hashes - still_used

    @audited("alias.set")
    def set_alias(self, alias: str, ref_text: str, *, actor: str) -> Alias:
        """Create or move an alias (atomic; drops any canary split; recorded in its history
        and the audit log): :meth:`Aliases.set` without a canary."""
        validate_name(alias, what="alias")
        state = Aliases(self, self.settings).set(alias, ref_text, actor=actor)
        assert state.updated_at is not None
        return Alias(alias, state.target, state.updated_at)

    @audited("alias.remove")
    def delete_alias(self, alias: str, *, actor: str) -> None:
        Aliases(self, self.settings).remove(alias, actor=actor)

    # -- reading -------------------------------------------------------------------------

    def get(self, ref_text: str) -> ModelVersion:
        ref = parse_ref(ref_text)
        with self.db.session() as session:
            row = self._find(session, ref)
            return _record(row, self._aliases_of(session, row.id))

    def resolve(self, name: str) -> ModelVersion:
        """A model reference or an alias, as a client would name it."""
        if "@" not in name:
            with self.db.session() as session:
                alias = session.get(AliasRow, name)
                if alias is not None:
                    row = session.get(ModelVersionRow, alias.version_id)
                    if row is not None:
                        return _record(row, self._aliases_of(session, row.id))
        return self.get(name)

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        with self.db.session() as session:
            query = (
                select(ModelVersionRow)
                .join(ModelRow)
                .options(selectinload(ModelVersionRow.files), selectinload(ModelVersionRow.model))
                .order_by(ModelRow.name, ModelVersionRow.version)
            )
            if name is not None:
                validate_name(name)
                query = query.where(ModelRow.name == name)
            rows = list(session.scalars(query))
            if name is not None and not rows:
                raise NotFound(f"no model named {name!r}")
            alias_map: dict[int, list[str]] = {}
            for alias in session.scalars(select(AliasRow)):
                alias_map.setdefault(alias.version_id, []).append(alias.name)
            return [_record(row, alias_map.get(row.id, ())) for row in rows]

    def list_aliases(self) -> list[Alias]:
        with self.db.session() as session:
            result = []
            for alias in session.scalars(select(AliasRow).order_by(AliasRow.name)):
                row = session.get(ModelVersionRow, alias.version_id)
                if row is not None:
                    target = f"{row.model.name}@{row.version}"
                    result.append(Alias(alias.name, target, _aware(alias.updated_at)))
            return result

    def referenced_blobs(self) -> set[str]:
        with self.db.session() as session:
            return set(session.scalars(select(VersionFileRow.blob_sha256)))

    def is_empty(self) -> bool:
        with self.db.session() as session:
            return not session.scalar(select(func.count()).select_from(ModelVersionRow))

    # -- helpers -------------------------------------------------------------------------

    def _versions_of(self, session: Session, name: str) -> list[ModelVersionRow]:
        return versions_of(session, name)

    def _find(self, session: Session, ref: ModelRef) -> ModelVersionRow:
        return find_version(session, ref)

    def _aliases_of(self, session: Session, version_id: int) -> list[str]:
        return list(session.scalars(select(AliasRow.name).where(AliasRow.version_id == version_id)))
