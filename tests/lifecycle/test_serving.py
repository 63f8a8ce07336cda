"""resolve_for_serving: stages, pilots, deprecation headers, retirement, advisories, canaries."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import Lifecycle, place
from modelyard.catalog.registry import Registry
from modelyard.catalog.serving import resolve_for_serving
from modelyard.config import Settings
from modelyard.errors import Conflict, Forbidden, Gone, NotFound, Unavailable
from modelyard.governance.policy import Policy
from tests.lifecycle.helpers import add_version


def promote(lc: Lifecycle, ref: str, to: str, **kwargs: object) -> None:
    lc.promote(ref, to, actor="bob", reason=f"to {to}", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def lc(fast_registry: Registry, sqlite_settings: Settings) -> Lifecycle:
    return Lifecycle(fast_registry, sqlite_settings, Policy())


def test_only_production_is_served_and_bare_name_is_newest_production(lc: Lifecycle) -> None:
    registry = lc.registry
    for _ in range(3):
        add_version(registry, "m")
    with pytest.raises(Forbidden, match="no version of m is in production"):
        resolve_for_serving(registry, "m")
    with pytest.raises(Forbidden, match="m@3 is at stage registered"):
        resolve_for_serving(registry, "m@3")
    promote(lc, "m@1", "production")
    promote(lc, "m@2", "production")
    promote(lc, "m@3", "approved")
    served = resolve_for_serving(registry, "m")
    assert served.version.ref == "m@2" and served.stage == "production"
    assert served.headers["X-Modelyard-Version"] == "m@2"
    assert resolve_for_serving(registry, "m@1").version.ref == "m@1"
    with pytest.raises(Forbidden, match="approved for pilots only") as refused:
        resolve_for_serving(registry, "m@3")
    assert refused.value.http_status == 403
    assert resolve_for_serving(registry, "m@3", pilot=True).version.ref == "m@3"
    assert resolve_for_serving(registry, "m", pilot=True).version.ref == "m@2"
    with pytest.raises(NotFound):
        resolve_for_serving(registry, "ghost")


def test_pilot_bare_name_falls_back_to_approved(lc: Lifecycle) -> None:
    add_version(lc.registry, "p")
    promote(lc, "p@1", "approved")
    with pytest.raises(Forbidden):
        resolve_for_serving(lc.registry, "p")
    assert resolve_for_serving(lc.registry, "p", pilot=True).stage == "approved"


def test_deprecated_carries_headers_and_retired_is_gone(lc: Lifecycle) -> None:
    registry = lc.registry
    add_version(registry, "m")
    add_version(registry, "m")
    promote(lc, "m@1", "production")
    promote(lc, "m@2", "production")
    Aliases(registry, lc.settings).set("chat", "m@2", actor="bob")
    sunset = datetime(2027, 3, 1, tzinfo=UTC)
    promote(lc, "m@1", "deprecated", sunset_at=sunset, replacement="chat")
    served = resolve_for_serving(registry, "m@1")
    assert served.stage == "deprecated"
    assert served.headers["Deprecation"].startswith("@")
    [deprecated] = [t for t in lc.history("m") if t.ref == "m@1" and t.to_stage == "deprecated"]
    assert served.headers["Deprecation"] == f"@{int(deprecated.at.timestamp())}"
    assert parsedate_to_datetime(served.headers["Sunset"]) == sunset
    assert served.headers["Sunset"] == "Mon, 01 Mar 2027 00:00:00 GMT"
    assert served.headers["X-Modelyard-Replacement"] == "chat"
    assert "Deprecation" not in resolve_for_serving(registry, "m").headers
    promote(lc, "m@1", "retired")
    with pytest.raises(Gone, match=r"m@1 is retired since .*; use 'chat' instead") as gone:
        resolve_for_serving(registry, "m@1")
    assert gone.value.http_status == 410 and gone.value.code == "model_retired"
    with pytest.raises(Conflict, match="still the target of alias chat"):
        promote(lc, "m@2", "retired")


def test_every_version_retired_answers_gone(lc: Lifecycle) -> None:
    add_version(lc.registry, "old")
    place(lc.registry, "old@1", Stage.RETIRED, actor="ops", reason="end of life")
    with pytest.raises(Gone, match="no replacement was named"):
        resolve_for_serving(lc.registry, "old")


def test_blocking_advisory_takes_effect_on_the_next_request(lc: Lifecycle) -> None:
    registry = lc.registry
    add_version(registry, "m")
    add_version(registry, "m")
    promote(lc, "m@1", "production")
    promote(lc, "m@2", "production")
    aliases = Aliases(registry, lc.settings)
    aliases.set("chat", "m@1", actor="bob")
    aliases.set("chat", "m@2", actor="bob")
    advisories = Advisories(registry, lc.settings)
    assert resolve_for_serving(registry, "chat").version.ref == "m@2"
    advisories.add("m@2", "CVE-2026-0001", severity="critical", action="block", actor="sec")
    with pytest.raises(Unavailable, match=r"m@2 is blocked by advisory CVE-2026-0001 \(critical\)"):
        resolve_for_serving(registry, "m@2")
    fallback = resolve_for_serving(registry, "chat")
    assert fallback.version.ref == "m@1"
    assert "fallback" in fallback.route and "CVE-2026-0001" in fallback.route
    assert resolve_for_serving(registry, "m").version.ref == "m@1"  # bare name skips it
    advisories.add("m@1", "CVE-2026-0002", severity="high", action="block", actor="sec")
    with pytest.raises(Unavailable, match="CVE-2026-0001") as blocked:
        resolve_for_serving(registry, "chat")
    assert blocked.value.http_status == 503
    with pytest.raises(Unavailable, match="CVE-2026-0002"):
        resolve_for_serving(registry, "m")
    advisories.withdraw("m@2", "CVE-2026-0001", actor="sec")
    assert resolve_for_serving(registry, "chat").version.ref == "m@2"


def test_warn_advisory_serves_with_a_header(lc: Lifecycle) -> None:
    add_version(lc.registry, "m")
    promote(lc, "m@1", "production")
    Advisories(lc.registry).add("m@1", "GHSA-x", severity="low", action="warn", actor="sec")
    served = resolve_for_serving(lc.registry, "m@1")
    assert served.headers["X-Modelyard-Advisory"] == "GHSA-x (low)"


def test_canary_split_within_tolerance(lc: Lifecycle) -> None:
    registry = lc.registry
    add_version(registry, "m")
    add_version(registry, "m")
    promote(lc, "m@1", "production")
    promote(lc, "m@2", "production")
    Aliases(registry, lc.settings).set("chat", "m@1", canary="m@2", weight=25, actor="bob")
    answers = [resolve_for_serving(registry, "chat") for _ in range(400)]
    canary = [a for a in answers if a.version.ref == "m@2"]
    # 400 draws at 25%: mean 100, standard deviation ~8.7; 60..140 is beyond 4.5 sigma.
    assert 60 <= len(canary) <= 140, len(canary)
    assert all(a.canary and a.alias == "chat" and "canary, 25%" in a.route for a in canary)
    assert not any(a.canary for a in answers if a.version.ref == "m@1")
    seeded = [
        resolve_for_serving(registry, "chat", rng=random.Random(7)).version.ref for _ in range(3)
    ]
    assert len(set(seeded)) == 1


def test_canary_not_servable_falls_back_to_primary(lc: Lifecycle) -> None:
    add_version(lc.registry, "m")
    add_version(lc.registry, "m")
    promote(lc, "m@1", "production")
    promote(lc, "m@2", "approved")
    Aliases(lc.registry, lc.settings).set("chat", "m@1", canary="m@2", weight=50, actor="bob")
    served = [resolve_for_serving(lc.registry, "chat").version.ref for _ in range(20)]
    assert set(served) == {"m@1"}
    piloted = [resolve_for_serving(lc.registry, "chat", pilot=True) for _ in range(50)]
    assert {p.version.ref for p in piloted} == {"m@1", "m@2"}
