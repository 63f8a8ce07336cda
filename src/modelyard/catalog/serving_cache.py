"""What :func:`~modelyard.catalog.serving.resolve_for_serving` reads, and a per-process cache
of it that is exact: valid only while the database's ``catalog_generation`` is unchanged.

:class:`SessionView` reads the catalog rows in the caller's transaction. :class:`ServingCache`
(one per gateway process) keeps what views loaded, filed under the counter that was read
*before* the rows (:mod:`modelyard.store.generation_tables`); a view for a request whose
counter differs starts from empty. The cache holds data only — candidates, alias targets,
alias history, version records — never a decision: canary sides, refusals and the
time-dependent headers are worked out anew on every request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager

from modelyard.catalog.advisories import Advisory, active_for
from modelyard.catalog.aliases import AliasEvent, events_of
from modelyard.catalog.lifecycle import StageInfo, stage_info
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import version_record
from modelyard.catalog.rows import find_version, ref_of
from modelyard.errors import NotFound
from modelyard.store.generation_tables import GenerationCache
from modelyard.store.lifecycle_tables import AliasCanaryRow, VersionStateRow
from modelyard.store.tables import AliasRow, ModelRow, ModelVersionRow

T = TypeVar("T")

DEFAULT_MAX_ENTRIES = 4096
"""Entries one process keeps (a few per name clients use); the oldest used go first."""


@dataclass(frozen=True)
class Candidate:
    """A version that may answer: its stage and active advisories (plain data, no ORM)."""

    id: int
    ref: str
    info: StageInfo
    advisories: tuple[Advisory, ...]

    @property
    def blocking(self) -> tuple[Advisory, ...]:
        return tuple(a for a in self.advisories if a.action == "block")


@dataclass(frozen=True)
class AliasTarget:
    target_id: int
    canary_id: int | None
    weight: float | None


class CatalogView(Protocol):
    """The reads that serving decisions are made from."""

    def version(self, ref: str) -> Candidate:
        """``NAME@N`` (or a bare name's newest version); NotFound when there is none."""
        ...

    def alias(self, name: str) -> AliasTarget | None: ...

    def by_ids(self, ids: Sequence[int]) -> dict[int, Candidate]: ...

    def named(self, name: str) -> list[Candidate]:
        """Every version of ``name``, newest first (empty when there is no such model)."""
        ...

    def alias_events(self, alias: str) -> list[AliasEvent]: ...

    def model_version(self, version_id: int) -> ModelVersion:
        """The version's immutable record, with the aliases pointing at it."""
        ...


class SessionView:
    """The catalog as the caller's transaction sees it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _load(self, where: Any, order: Any = None) -> list[Candidate]:
        """Versions with their model and stage in one query, their advisories in another."""
        query = (
            select(ModelVersionRow, VersionStateRow)
            .join(ModelRow, ModelRow.id == ModelVersionRow.model_id)
            .outerjoin(VersionStateRow, VersionStateRow.version_id == ModelVersionRow.id)
            .options(contains_eager(ModelVersionRow.model))
            .where(where)
        )
        if order is not None:
            query = query.order_by(order)
        pairs = [(row, state) for row, state in self.session.execute(query)]
        advisories = active_for(self.session, [row.id for row, _ in pairs])
        return [
            Candidate(row.id, ref_of(row), stage_info(state), tuple(advisories[row.id]))
            for row, state in pairs
        ]

    def version(self, ref: str) -> Candidate:
        row = find_version(self.session, ref)
        return self._load(ModelVersionRow.id == row.id)[0]

    def alias(self, name: str) -> AliasTarget | None:
        found = self.session.execute(
            select(AliasRow.version_id, AliasCanaryRow.version_id, AliasCanaryRow.weight)
            .outerjoin(AliasCanaryRow, AliasCanaryRow.alias == AliasRow.name)
            .where(AliasRow.name == name)
        ).first()
        return None if found is None else AliasTarget(*found)

    def by_ids(self, ids: Sequence[int]) -> dict[int, Candidate]:
        return {c.id: c for c in self._load(ModelVersionRow.id.in_(list(ids)))}

    def named(self, name: str) -> list[Candidate]:
        return self._load(ModelRow.name == name, ModelVersionRow.version.desc())

    def alias_events(self, alias: str) -> list[AliasEvent]:
        return events_of(self.session, alias)

    def model_version(self, version_id: int) -> ModelVersion:
        row = self.session.get(ModelVersionRow, version_id)  # loaded already, most often
        if row is None:
            raise NotFound(f"no version with id {version_id}", param="model")
        aliases = self.session.scalars(select(AliasRow.name).where(AliasRow.version_id == row.id))
        return version_record(row, list(aliases))


@dataclass(frozen=True)
class _Missing:
    """A cached NotFound (its message; the error is raised anew each time)."""

    message: str


class ServingCache:
    """What views loaded under one ``catalog_generation`` (one per gateway process)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.entries = GenerationCache(max_entries)

    def view(self, session: Session, generation: int | None) -> CatalogView:
        """A view for one request that read ``generation`` (None: no counter, no reuse)."""
        direct = SessionView(session)
        if generation is None:
            return direct
        return _CachedView(self.entries, direct, generation)


class _CachedView:
    """A :class:`SessionView` in front of which the process's cache answers what it can."""

    def __init__(self, cache: GenerationCache, direct: SessionView, generation: int) -> None:
        self.cache = cache
        self.direct = direct
        self.generation = generation

    def _through(self, key: tuple[str, object], load: Callable[[], T]) -> T:
        hit, value = self.cache.get(self.generation, key)
        if not hit:
            value = load()
            self.cache.put(self.generation, key, value)
        return cast(T, value)

    def version(self, ref: str) -> Candidate:
        def load() -> Candidate | _Missing:
            try:
                return self.direct.version(ref)
            except NotFound as exc:
                return _Missing(exc.message)

        found = self._through(("version", ref), load)
        if isinstance(found, _Missing):
            raise NotFound(found.message, param="model", code="model_not_found")
        return found

    def alias(self, name: str) -> AliasTarget | None:
        return self._through(("alias", name), lambda: self.direct.alias(name))

    def by_ids(self, ids: Sequence[int]) -> dict[int, Candidate]:
        found: dict[int, Candidate] = {}
        missing = []
        for vid in ids:
            hit, value = self.cache.get(self.generation, ("id", vid))
            if hit:
                found[vid] = cast(Candidate, value)
            else:
                missing.append(vid)
        if missing:
            for vid, cand in self.direct.by_ids(missing).items():
                self.cache.put(self.generation, ("id", vid), cand)
                found[vid] = cand
        return found

    def named(self, name: str) -> list[Candidate]:
        return list(self._through(("named", name), lambda: self.direct.named(name)))

    def alias_events(self, alias: str) -> list[AliasEvent]:
        return list(self._through(("events", alias), lambda: self.direct.alias_events(alias)))

    def model_version(self, version_id: int) -> ModelVersion:
        return self._through(
            ("model_version", version_id), lambda: self.direct.model_version(version_id)
        )
