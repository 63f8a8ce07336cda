"""Finding version rows inside a session: shared by the registry and the lifecycle modules."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.catalog.refs import ModelRef, parse_ref
from modelyard.errors import NotFound
from modelyard.store.tables import ModelRow, ModelVersionRow


def ref_of(row: ModelVersionRow) -> str:
    return f"{row.model.name}@{row.version}"


def versions_of(session: Session, name: str) -> list[ModelVersionRow]:
    """Every version of ``name``, oldest first; NotFound when there is none."""
    rows = list(
        session.scalars(
            select(ModelVersionRow)
            .join(ModelRow)
            .where(ModelRow.name == name)
            .order_by(ModelVersionRow.version)
        )
    )
    if not rows:
        raise NotFound(f"no model named {name!r}", param="model", code="model_not_found")
    return rows


def find_version(session: Session, ref: ModelRef | str) -> ModelVersionRow:
    """``NAME@N``, or the newest version of a bare ``NAME``."""
    if isinstance(ref, str):
        ref = parse_ref(ref)
    rows = versions_of(session, ref.name)
    if ref.version is None:
        return rows[-1]
    for row in rows:
        if row.version == ref.version:
            return row
    raise NotFound(
        f"{ref.name} has no version {ref.version} "
        f"(versions: {', '.join(str(r.version) for r in rows)})",
        param="model",
        code="model_not_found",
    )
