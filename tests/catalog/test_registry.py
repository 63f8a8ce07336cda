"""The registry against SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.intake.importer import import_path
from modelyard.store.tables import ModelVersionRow
from tests.factories import make_hf_directory, write_tiny_gguf


@pytest.fixture
def two_versions(registry: Registry, settings: Settings, tmp_path: Path) -> Registry:
    import_path(write_tiny_gguf(tmp_path / "a.gguf", context=128), registry, settings, name="m")
    import_path(write_tiny_gguf(tmp_path / "b.gguf", context=256), registry, settings, name="m")
    return registry


def test_bare_name_is_newest(two_versions: Registry) -> None:
    assert two_versions.get("m").version == 2
    assert two_versions.get("m@1").metadata["context_length"] == 128
    with pytest.raises(NotFound, match="no version 3"):
        two_versions.get("m@3")
    with pytest.raises(NotFound, match="no model named"):
        two_versions.get("missing")


def test_alias_blocks_removal_until_moved(two_versions: Registry) -> None:
    two_versions.set_alias("chat", "m@1", actor="tests")
    assert two_versions.resolve("chat").ref == "m@1"
    assert two_versions.get("m@1").aliases == ("chat",)
    with pytest.raises(Conflict, match="alias chat"):
        two_versions.remove("m@1", actor="tests")
    two_versions.set_alias("chat", "m@2", actor="tests")
    assert two_versions.resolve("chat").ref == "m@2"
    removed = two_versions.remove("m@1", actor="tests")
    assert [v.ref for v in removed] == ["m@1"]
    assert [v.ref for v in two_versions.list_versions()] == ["m@2"]


def test_removing_last_reference_frees_the_blob(two_versions: Registry) -> None:
    first, second = two_versions.list_versions("m")
    assert two_versions.blobs.exists(first.digest)
    two_versions.remove("m@1", actor="tests")
    assert not two_versions.blobs.exists(first.digest)
    assert two_versions.blobs.exists(second.digest)
    two_versions.remove("m", all_versions=True, actor="tests")
    assert not two_versions.blobs.exists(second.digest)
    assert two_versions.list_versions() == []


def test_shared_blob_survives_until_last_version_goes(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    source = write_tiny_gguf(tmp_path / "s.gguf")
    a = import_path(source, registry, settings, name="a")
    import_path(source, registry, settings, name="b")
    registry.remove("a", actor="tests")
    assert registry.blobs.exists(a.digest)
    registry.remove("b", actor="tests")
    assert not registry.blobs.exists(a.digest)


def test_directory_versions_share_file_blobs(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    root = make_hf_directory(tmp_path / "d")
    import_path(root, registry, settings, name="d")
    (root / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    v2 = import_path(root, registry, settings, name="d")
    assert v2.metadata["license"] == "apache-2.0"
    v1 = registry.get("d@1")
    assert v1.digest != v2.digest
    shared = {f.sha256 for f in v1.files} & {f.sha256 for f in v2.files}
    assert len(shared) == 4  # everything but the README
    registry.remove("d@1", actor="tests")
    for sha in shared:
        assert registry.blobs.exists(sha)


def test_versions_are_immutable(two_versions: Registry) -> None:
    with pytest.raises(TypeError, match="immutable"), two_versions.db.session() as session:
        row = session.scalars(select(ModelVersionRow)).first()
        assert row is not None
        row.source_path = "tampered"
        session.flush()
    assert two_versions.get("m@1").source_path != "tampered"


def test_alias_name_rules(two_versions: Registry) -> None:
    with pytest.raises(InvalidInput):
        two_versions.set_alias("Bad Alias", "m", actor="tests")
    with pytest.raises(Conflict, match="already a model name"):
        two_versions.set_alias("m", "m@1", actor="tests")
    with pytest.raises(NotFound):
        two_versions.delete_alias("nope", actor="tests")


def test_lineage_records_parent(registry: Registry, settings: Settings, tmp_path: Path) -> None:
    from modelyard.catalog.records import NewVersion

    base = import_path(write_tiny_gguf(tmp_path / "base.gguf"), registry, settings, name="base")
    child = registry.add_version(
        NewVersion(
            name="child",
            digest=base.digest,
            format="gguf",
            size_bytes=base.size_bytes,
            metadata=base.metadata,
            files=base.files,
            source_path="test",
            created_by="tester",
            origin="quantized",
            parent="base@1",
            lineage={"type": "Q8_0"},
        )
    )
    assert child.parent == "base@1"
    assert child.lineage == {
        "origin": "quantized",
        "type": "Q8_0",
        "parent": "base@1",
        "parent_digest": base.digest,
    }
    assert child.origin == "quantized" and child.created_by == "tester"
