"""Stages and transitions: allowed moves, records, refusal leaves nothing, audit events."""

from __future__ import annotations

import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.lifecycle import Stage, plan_path
from modelyard.catalog.promotion import Lifecycle, place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.governance.policy import Policy
from tests.lifecycle.helpers import add_version


def test_allowed_paths() -> None:
    assert plan_path(Stage.REGISTERED, Stage.PRODUCTION) == [
        Stage.CANDIDATE,
        Stage.APPROVED,
        Stage.PRODUCTION,
    ]
    assert plan_path(Stage.APPROVED, Stage.CANDIDATE) == [Stage.CANDIDATE]
    assert plan_path(Stage.PRODUCTION, Stage.CANDIDATE) == [Stage.CANDIDATE]
    assert plan_path(Stage.DEPRECATED, Stage.PRODUCTION) == [Stage.PRODUCTION]
    assert plan_path(Stage.PRODUCTION, Stage.RETIRED) == [Stage.DEPRECATED, Stage.RETIRED]
    with pytest.raises(Conflict, match="cannot move from retired to production"):
        plan_path(Stage.RETIRED, Stage.PRODUCTION)
    with pytest.raises(Conflict, match="cannot move from candidate to registered"):
        plan_path(Stage.CANDIDATE, Stage.REGISTERED)
    with pytest.raises(Conflict, match="already production"):
        plan_path(Stage.PRODUCTION, Stage.PRODUCTION)


def test_transitions_are_recorded_and_audited(registry: Registry, settings: Settings) -> None:
    add_version(registry, "m", created_by="alice")
    lc = Lifecycle(registry, settings, Policy())
    lc.promote("m@1", "approved", actor="bob", reason="review passed")
    lc.promote("m@1", "candidate", actor="carol", reason="failed second review")
    assert lc.stage("m@1")[1].stage == Stage.CANDIDATE
    history = [(t.from_stage, t.to_stage, t.actor, t.reason) for t in lc.history("m")]
    assert history == [
        (None, "registered", "alice", "imported from test:m"),
        ("registered", "candidate", "bob", "review passed"),
        ("candidate", "approved", "bob", "review passed"),
        ("approved", "candidate", "carol", "failed second review"),
    ]
    events = [r for r in iter_records(registry.db, Filter(kind="event")) if r["target"] == "m@1"]
    assert [(e["details"]["event"], e["details"].get("to"), e["actor"]) for e in events] == [
        ("model.import", None, "alice"),
        ("lifecycle.promote", "approved", "bob"),
        ("lifecycle.promote", "candidate", "carol"),
    ]
    assert events[2]["details"]["reason"] == "failed second review"


def test_bad_promotions_change_nothing(fast_registry: Registry, sqlite_settings: Settings) -> None:
    add_version(fast_registry, "m")
    lc = Lifecycle(fast_registry, sqlite_settings, Policy())
    with pytest.raises(InvalidInput, match="needs a reason"):
        lc.promote("m@1", "candidate", actor="bob", reason="  ")
    with pytest.raises(InvalidInput, match="unknown stage 'shipped'"):
        lc.promote("m@1", "shipped", actor="bob", reason="x")
    with pytest.raises(NotFound, match="no version 9"):
        lc.promote("m@9", "candidate", actor="bob", reason="x")
    with pytest.raises(NotFound, match="neither an alias nor a model"):
        lc.promote("m@1", "deprecated", actor="bob", reason="x", replacement="nowhere")
    with pytest.raises(InvalidInput, match="--sunset applies to a deprecation"):
        from datetime import UTC, datetime

        lc.promote("m@1", "candidate", actor="bob", reason="x", sunset_at=datetime.now(UTC))
    assert lc.stage("m@1")[1].stage == Stage.REGISTERED
    assert len(lc.history("m")) == 1


def test_place_bypasses_gates_but_records(
    fast_registry: Registry, sqlite_settings: Settings
) -> None:
    add_version(fast_registry, "m")
    written = place(fast_registry, "m@1", Stage.PRODUCTION, actor="ops", reason="bundled default")
    assert [t.to_stage for t in written] == ["candidate", "approved", "production"]
    assert place(fast_registry, "m@1", Stage.PRODUCTION, actor="ops", reason="again") == []


def test_removal_drops_state_keeps_history(registry: Registry, settings: Settings) -> None:
    from modelyard.catalog.advisories import Advisories

    add_version(registry, "m")
    add_version(registry, "m")
    lc = Lifecycle(registry, settings, Policy())
    lc.promote("m@2", "production", actor="bob", reason="go")
    Advisories(registry).add("m@2", "CVE-9", severity="low", action="block", actor="sec")
    registry.remove("m@2", actor="tests")
    add_version(registry, "m")  # takes number 2 again: starts fresh at registered
    assert lc.stage("m@2")[1].stage == Stage.REGISTERED
    assert Advisories(registry).list("m@2") == []
    assert [t.to_stage for t in lc.history("m") if t.ref == "m@2"] == [
        "registered",
        "candidate",
        "approved",
        "production",
        "registered",
    ]
