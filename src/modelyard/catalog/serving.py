"""Which version answers when a client names a model: the single decision point for serving.

The gateway (and anything else that serves) calls :func:`resolve_for_serving` and nothing
else to turn a client's model name into a version. The rules, read in one database snapshot
per request (so an alias move takes effect on the next request, with no restart):

* ``NAME@N`` is that version; an alias is its target, or its canary for ``weight`` percent of
  requests; a bare ``NAME`` is the newest ``production`` version of that name (for pilot
  keys, an ``approved`` one when none is in production; else the newest ``deprecated``).
* Only ``production`` and ``deprecated`` versions are served, and ``approved`` ones to keys
  with the pilot scope. ``deprecated`` answers carry ``Deprecation`` and ``Sunset`` headers;
  a ``retired`` version answers 410 naming its replacement.
* A blocking advisory stops a version at once: an alias falls back to its other side, then
  to its earlier targets; otherwise the request gets 503 naming the advisory.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import format_datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager

from modelyard.catalog.advisories import Advisory, active_for
from modelyard.catalog.aliases import events_of
from modelyard.catalog.lifecycle import Stage, StageInfo, stage_info, states_of
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.refs import parse_ref
from modelyard.catalog.registry import Registry, version_record
from modelyard.catalog.rows import find_version, ref_of
from modelyard.errors import Forbidden, Gone, ModelyardError, NotFound, Unavailable
from modelyard.store.lifecycle_tables import AliasCanaryRow, VersionStateRow
from modelyard.store.tables import AliasRow, ModelRow, ModelVersionRow


@dataclass(frozen=True)
class ServedModel:
    version: ModelVersion
    requested: str
    """The name the client used (a model name, ``NAME@N`` or an alias)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (``Deprecation``, ``Sunset``, ``X-Modelyard-Version``…)."""
    stage: str = Stage.PRODUCTION.value
    alias: str | None = None
    """The alias the client used, if any."""
    canary: bool = False
    """True when the alias's canary side answered."""
    route: str = ""
    """Why this version answered (for the audit record): alias, canary, fallback…"""


@dataclass(frozen=True)
class _Candidate:
    row: ModelVersionRow
    info: StageInfo
    advisories: tuple[Advisory, ...]

    @property
    def ref(self) -> str:
        return ref_of(self.row)

    @property
    def blocking(self) -> tuple[Advisory, ...]:
        return tuple(a for a in self.advisories if a.action == "block")


def resolve_for_serving(
    registry: Registry,
    requested: str,
    *,
    pilot: bool = False,
    rng: random.Random | None = None,
) -> ServedModel:
    """Resolve a client's model name; raises NotFound/Gone/Unavailable/Forbidden when refused.

    ``pilot`` is true for keys allowed to use versions still being piloted; ``rng`` picks the
    canary side (tests may pass a seeded one).
    """
    chooser = rng or random.Random()
    with registry.db.session() as session:
        if "@" in requested:
            cand = _candidates(session, [find_version(session, requested)])[0]
            _raise_if_refused(cand, pilot)
            return _served(session, cand, requested, route=f"version {cand.ref}")
        alias = session.execute(
            select(AliasRow.version_id, AliasCanaryRow.version_id, AliasCanaryRow.weight)
            .outerjoin(AliasCanaryRow, AliasCanaryRow.alias == AliasRow.name)
            .where(AliasRow.name == requested)
        ).first()
        if alias is not None:
            target_id, canary_id, weight = alias
            return _via_alias(session, requested, target_id, canary_id, weight, pilot, chooser)
        parse_ref(requested)
        return _newest_served(session, requested, pilot)


def _load(session: Session, where: Any, order: Any = None) -> list[_Candidate]:
    """Versions with their model and stage in one query, then their advisories in another."""
    query = (
        select(ModelVersionRow, VersionStateRow)
        .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
        .outerjoin(VersionStateRow, VersionStateRow.version_id == ModelVersionRow.id)
        .options(contains_eager(ModelVersionRow.model))
        .where(where)
    )
    if order is not None:
        query = query.order_by(order)
    pairs = [(row, state) for row, state in session.execute(query)]
    advisories = active_for(session, [row.id for row, _ in pairs])
    return [_Candidate(row, stage_info(state), tuple(advisories[row.id])) for row, state in pairs]


def _candidates(session: Session, rows: list[ModelVersionRow]) -> list[_Candidate]:
    ids = [row.id for row in rows]
    states = states_of(session, ids)
    advisories = active_for(session, ids)
    return [_Candidate(row, states[row.id], tuple(advisories[row.id])) for row in rows]


def refusal(cand: _Candidate, pilot: bool) -> ModelyardError | None:
    """Why ``cand`` may not answer this request, or None when it may."""
    stage = cand.info.stage
    if stage == Stage.RETIRED:
        since = f" since {cand.info.since:%Y-%m-%d}" if cand.info.since else ""
        instead = (
            f"use {cand.info.replacement!r} instead"
            if cand.info.replacement
            else "no replacement was named"
        )
        return Gone(f"{cand.ref} is retired{since}; {instead}", param="model", code="model_retired")
    if stage == Stage.APPROVED and not pilot:
        return Forbidden(
            f"{cand.ref} is approved for pilots only; a key with the pilot scope may use it",
            param="model",
            code="model_not_served",
        )
    if stage in (Stage.REGISTERED, Stage.CANDIDATE):
        return Forbidden(
            f"{cand.ref} is at stage {stage.value}: only production versions are served",
            param="model",
            code="model_not_served",
        )
    if cand.blocking:
        ids = ", ".join(f"{a.id} ({a.severity})" for a in cand.blocking)
        return Unavailable(
            f"{cand.ref} is blocked by advisory {ids}", param="model", code="model_blocked"
        )
    return None


def _raise_if_refused(cand: _Candidate, pilot: bool) -> None:
    error = refusal(cand, pilot)
    if error is not None:
        raise error


def _via_alias(
    session: Session,
    alias: str,
    target_id: int,
    canary_id: int | None,
    weight: float | None,
    pilot: bool,
    rng: random.Random,
) -> ServedModel:
    ids = [target_id] if canary_id is None else [target_id, canary_id]
    loaded = {c.row.id: c for c in _load(session, ModelVersionRow.id.in_(ids))}
    tried = [loaded[target_id]]
    canary_ref = None
    if canary_id is not None and weight is not None:
        canary_ref = loaded[canary_id].ref
        use_canary = rng.random() * 100 < weight
        tried = [loaded[canary_id], tried[0]] if use_canary else [tried[0], loaded[canary_id]]
    notes: list[str] = []
    for cand in tried:
        error = refusal(cand, pilot)
        if error is None:
            is_canary = cand.ref == canary_ref
            label = f" (canary, {weight:g}%)" if is_canary and weight is not None else ""
            note = f" ({'; '.join(notes)})" if notes else ""
            return _served(
                session,
                cand,
                alias,
                alias=alias,
                canary=is_canary,
                route=f"alias {alias} → {cand.ref}{label}{note}",
            )
        notes.append(f"{cand.ref} refused: {error.message}")
    primary_cand = next(c for c in tried if c.row.id == target_id)
    primary_error = refusal(primary_cand, pilot)
    assert primary_error is not None
    if isinstance(primary_error, Unavailable):
        fallback = _earlier_target(session, alias, {c.row.id for c in tried}, pilot)
        if fallback is not None:
            return _served(
                session,
                fallback,
                alias,
                alias=alias,
                route=f"alias {alias} → {fallback.ref} (fallback: {'; '.join(notes)})",
            )
    raise primary_error


def _earlier_target(
    session: Session, alias: str, exclude: set[int], pilot: bool
) -> _Candidate | None:
    """The newest earlier target of the alias that may serve (a blocked version's fallback)."""
    seen: set[str] = set()
    for event in reversed(events_of(session, alias)):
        for ref in (event.previous_target, event.target):
            if ref is None or ref in seen:
                continue
            seen.add(ref)
            try:
                row = find_version(session, ref)
            except NotFound:
                continue
            if row.id in exclude:
                continue
            cand = _candidates(session, [row])[0]
            if cand.info.stage == Stage.PRODUCTION and refusal(cand, pilot) is None:
                return cand
    return None


def _newest_served(session: Session, name: str, pilot: bool) -> ServedModel:
    cands = _load(session, ModelRow.name == name, ModelVersionRow.version.desc())
    if not cands:
        raise NotFound(f"no model or alias named {name!r}", param="model", code="model_not_found")
    by_stage = {stage: [c for c in cands if c.info.stage == stage] for stage in Stage}
    pool = by_stage[Stage.PRODUCTION]
    if not pool and pilot:
        pool = by_stage[Stage.APPROVED]
    if not pool:
        pool = by_stage[Stage.DEPRECATED]
    skipped: list[str] = []
    for cand in pool:
        if not cand.blocking:
            note = f" (skipped {', '.join(skipped)}: blocked)" if skipped else ""
            return _served(
                session, cand, name, route=f"newest {cand.info.stage.value} {cand.ref}{note}"
            )
        skipped.append(cand.ref)
    if pool:
        blocked = "; ".join(
            f"{c.ref} by {', '.join(f'{a.id} ({a.severity})' for a in c.blocking)}" for c in pool
        )
        raise Unavailable(
            f"every {pool[0].info.stage.value} version of {name} is blocked by an advisory: "
            f"{blocked}",
            param="model",
            code="model_blocked",
        )
    if by_stage[Stage.RETIRED] and len(by_stage[Stage.RETIRED]) == len(cands):
        _raise_if_refused(by_stage[Stage.RETIRED][0], pilot)
    stages = ", ".join(f"{c.ref} {c.info.stage.value}" for c in cands)
    raise Forbidden(
        f"no version of {name} is in production ({stages}); "
        "promote one with `modelyard models promote`",
        param="model",
        code="model_not_served",
    )


def _served(
    session: Session,
    cand: _Candidate,
    requested: str,
    *,
    route: str,
    alias: str | None = None,
    canary: bool = False,
) -> ServedModel:
    headers = {"X-Modelyard-Version": cand.ref}
    if cand.info.stage == Stage.DEPRECATED:
        if cand.info.since is not None:
            headers["Deprecation"] = f"@{int(cand.info.since.timestamp())}"
        if cand.info.sunset_at is not None:
            headers["Sunset"] = format_datetime(cand.info.sunset_at.astimezone(UTC), usegmt=True)
        if cand.info.replacement:
            headers["X-Modelyard-Replacement"] = cand.info.replacement
    warnings = [f"{a.id} ({a.severity})" for a in cand.advisories if a.action == "warn"]
    if warnings:
        headers["X-Modelyard-Advisory"] = ", ".join(warnings)
    aliases = session.scalars(select(AliasRow.name).where(AliasRow.version_id == cand.row.id))
    return ServedModel(
        version=version_record(cand.row, list(aliases)),
        requested=requested,
        headers=headers,
        stage=cand.info.stage.value,
        alias=alias,
        canary=canary,
        route=route,
    )
