"""Deployment manifests: export, apply on a fresh home reproduces the served set, diff."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.advisories import Advisories
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.registry import Registry
from modelyard.catalog.serving import resolve_for_serving
from modelyard.config import Settings
from modelyard.deploy.apply import apply_manifest
from modelyard.deploy.diff import diff_manifests
from modelyard.deploy.manifest import build_manifest, dump_manifest, load_manifest
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.governance.policy import Policy
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.lifecycle.helpers import add_version


def served_set(registry: Registry) -> dict[str, object]:
    manifest = build_manifest(registry, Settings(), Policy())
    return {
        "models": {
            ref: (m["digest"], m["stage"], m["sunset_at"], m["replacement"], m["advisories"])
            for ref, m in manifest["models"].items()
        },
        "aliases": manifest["aliases"],
    }


@pytest.fixture
def source(registry: Registry, settings: Settings) -> Registry:
    lc = Lifecycle(registry, settings, Policy())
    for _ in range(4):
        add_version(registry, "m")
    add_version(registry, "other")
    lc.promote("m@2", "production", actor="bob", reason="go")
    lc.promote("m@3", "production", actor="bob", reason="go")
    lc.promote("m@4", "approved", actor="bob", reason="pilot")
    aliases = Aliases(registry, settings)
    aliases.set("chat", "m@3", canary="m@4", weight=10, actor="bob")
    lc.promote(
        "m@2",
        "deprecated",
        actor="bob",
        reason="superseded",
        sunset_at=datetime(2027, 1, 1, tzinfo=UTC),
        replacement="chat",
    )
    Advisories(registry).add("m@3", "CVE-1", severity="low", action="warn", actor="sec")
    return registry


def fresh(tmp_path: Path, name: str) -> Registry:
    home = tmp_path / name
    settings = Settings(home=home)
    settings.ensure_home()
    return Registry(Database(settings.resolved_database_url), open_blob_store(settings), settings)


def test_export_then_apply_on_a_fresh_home_reproduces_the_served_set(
    source: Registry, settings: Settings, tmp_path: Path
) -> None:
    manifest = build_manifest(source, settings, Policy())
    assert sorted(manifest["models"]) == ["m@2", "m@3", "m@4"]  # m@1, other@1 not served
    text = dump_manifest(manifest)
    loaded = load_manifest(text, source="deployment.yaml")
    target = fresh(tmp_path, "elsewhere")
    with pytest.raises(NotFound, match="files not found"):
        apply_manifest(target, loaded, sources=[], actor="ops", manifest_sha256="0" * 64)
    assert target.is_empty()
    result = apply_manifest(
        target, loaded, sources=[settings.home], actor="ops", manifest_sha256="0" * 64
    )
    events = list(iter_records(target.db, Filter(kind="event")))
    assert [(e["details"]["event"], e["actor"]) for e in events] == [("deploy.apply", "ops")]
    assert events[0]["details"]["registered"] == ["m@2", "m@3", "m@4"]
    assert result.registered == ["m@2", "m@3", "m@4"] and result.blobs_copied == 3
    assert served_set(target) == served_set(source)
    assert resolve_for_serving(target, "m").version.ref == "m@3"
    assert resolve_for_serving(target, "m@2").headers["Sunset"] == "Fri, 01 Jan 2027 00:00:00 GMT"
    again = apply_manifest(target, loaded, sources=[], actor="ops", manifest_sha256="0" * 64)
    assert again.registered == [] and again.kept == ["m@2", "m@3", "m@4"]
    assert diff_manifests(manifest, build_manifest(target, settings, Policy())) == []
    target.db.close()


def test_apply_refuses_a_different_version_under_the_same_number(
    source: Registry, settings: Settings, tmp_path: Path
) -> None:
    manifest = build_manifest(source, settings, Policy())
    target = fresh(tmp_path, "clash")
    add_version(target, "m")
    add_version(target, "m")
    with pytest.raises(Conflict, match="refusing to replace a version"):
        apply_manifest(
            target, manifest, sources=[settings.home], actor="ops", manifest_sha256="0" * 64
        )
    assert [v.ref for v in target.list_versions()] == ["m@1", "m@2"]
    assert target.list_aliases() == []
    target.db.close()


def test_diff_names_each_change(source: Registry, settings: Settings) -> None:
    before = build_manifest(source, settings, Policy())
    Aliases(source, settings).set("chat", "m@4", actor="bob")
    Lifecycle(source, settings, Policy()).promote("m@4", "production", actor="bob", reason="go")
    after = build_manifest(source, settings, Policy(licences=("mit",)))
    lines = [c.describe() for c in diff_manifests(before, after)]
    assert "~ model m@4 stage: approved → production" in lines
    assert "~ alias chat: m@3 + canary m@4 10.0% → m@4" in lines
    assert any(line.startswith("~ policy rules") for line in lines)
    assert diff_manifests(before, before) == []


def test_bad_manifests_are_refused() -> None:
    with pytest.raises(InvalidInput, match="not a modelyard deployment manifest"):
        load_manifest("kind: other\n", source="x.yaml")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_manifest("kind: [", source="x.yaml")
    with pytest.raises(InvalidInput, match="unsupported manifest format"):
        load_manifest("kind: modelyard-deployment\nformat: 9\n", source="x.yaml")
