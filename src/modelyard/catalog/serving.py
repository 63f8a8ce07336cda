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

The rows come through a :class:`~modelyard.catalog.serving_cache.CatalogView`. The gateway
passes a cached one: each process keeps the rows it loaded (:class:`ServingCache
<modelyard.catalog.serving_cache.ServingCache>`) and reuses them while the database's
``catalog_generation`` counter is unchanged. Triggers on every table these rules read move
that counter in the same transaction as the change (:mod:`modelyard.store.generation_tables`),
whoever makes it — the CLI, another gateway process — and the gateway reads it (one small
query) before the rows on every request. So the cache is exact, not eventually consistent:
the request after a change's commit sees it. Only data is cached; this module still decides
every request afresh (the canary side is drawn, the ``Deprecation``/``Sunset`` headers made).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import format_datetime

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.refs import parse_ref
from modelyard.catalog.registry import Registry
from modelyard.catalog.serving_cache import AliasTarget, Candidate, CatalogView, SessionView
from modelyard.errors import Forbidden, Gone, ModelyardError, NotFound, Unavailable


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


def resolve_for_serving(
    registry: Registry,
    requested: str,
    *,
    pilot: bool = False,
    rng: random.Random | None = None,
    view: CatalogView | None = None,
) -> ServedModel:
    """Resolve a client's model name; raises NotFound/Gone/Unavailable/Forbidden when refused.

    ``pilot`` is true for keys allowed to use versions still being piloted; ``rng`` picks the
    canary side (tests may pass a seeded one). ``view`` reads the catalog (the gateway passes
    its process's cached one, :class:`~modelyard.catalog.serving_cache.ServingCache`); by
    default the rows are read in a transaction of the registry's database.
    """
    chooser = rng or random.Random()
    if view is not None:
        return _resolve(view, requested, pilot, chooser)
    with registry.db.session() as session:
        return _resolve(SessionView(session), requested, pilot, chooser)


def _resolve(view: CatalogView, requested: str, pilot: bool, rng: random.Random) -> ServedModel:
    if "@" in requested:
        cand = view.version(requested)
        _raise_if_refused(cand, pilot)
        return _served(view, cand, requested, route=f"version {cand.ref}")
    alias = view.alias(requested)
    if alias is not None:
        return _via_alias(view, requested, alias, pilot, rng)
    parse_ref(requested)
    return _newest_served(view, requested, pilot)


def refusal(cand: Candidate, pilot: bool) -> ModelyardError | None:
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


def _raise_if_refused(cand: Candidate, pilot: bool) -> None:
    error = refusal(cand, pilot)
    if error is not None:
        raise error


def _via_alias(
    view: CatalogView, alias: str, target: AliasTarget, pilot: bool, rng: random.Random
) -> ServedModel:
    target_id, canary_id, weight = target.target_id, target.canary_id, target.weight
    ids = [target_id] if canary_id is None else [target_id, canary_id]
    loaded = view.by_ids(ids)
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
                view,
                cand,
                alias,
                alias=alias,
                canary=is_canary,
                route=f"alias {alias} → {cand.ref}{label}{note}",
            )
        notes.append(f"{cand.ref} refused: {error.message}")
    primary_cand = next(c for c in tried if c.id == target_id)
    primary_error = refusal(primary_cand, pilot)
    assert primary_error is not None
    if isinstance(primary_error, Unavailable):
        fallback = _earlier_target(view, alias, {c.id for c in tried}, pilot)
        if fallback is not None:
            return _served(
                view,
                fallback,
                alias,
                alias=alias,
                route=f"alias {alias} → {fallback.ref} (fallback: {'; '.join(notes)})",
            )
    raise primary_error


def _earlier_target(
    view: CatalogView, alias: str, exclude: set[int], pilot: bool
) -> Candidate | None:
    """The newest earlier target of the alias that may serve (a blocked version's fallback)."""
    seen: set[str] = set()
    for event in reversed(view.alias_events(alias)):
        for ref in (event.previous_target, event.target):
            if ref is None or ref in seen:
                continue
            seen.add(ref)
            try:
                cand = view.version(ref)
            except NotFound:
                continue
            if cand.id in exclude:
                continue
            if cand.info.stage == Stage.PRODUCTION and refusal(cand, pilot) is None:
                return cand
    return None


def _newest_served(view: CatalogView, name: str, pilot: bool) -> ServedModel:
    cands = view.named(name)
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
                view, cand, name, route=f"newest {cand.info.stage.value} {cand.ref}{note}"
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
    view: CatalogView,
    cand: Candidate,
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
    return ServedModel(
        version=view.model_version(cand.id),
        requested=requested,
        headers=headers,
        stage=cand.info.stage.value,
        alias=alias,
        canary=canary,
        route=route,
    )
