"""Registry versions are matched to knowledge-base entries by architecture and size."""

from __future__ import annotations

from pathlib import Path

from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.advisor.matching import match_version
from modelyard.advisor.recommend import registered_matches
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.intake.importer import import_path


def test_imported_default_model_matches_gemma_3_270m(
    default_gguf: Path, sqlite_settings: Settings
) -> None:
    from modelyard.store.blobs import open_blob_store
    from modelyard.store.database import Database

    db = Database(sqlite_settings.resolved_database_url)
    try:
        registry = Registry(db, open_blob_store(sqlite_settings), sqlite_settings)
        version = import_path(default_gguf, registry, sqlite_settings, name="gemma3-270m")
        match = match_version(version.metadata, load_knowledge_base())
        assert match is not None
        assert match.entry.id == "gemma-3-270m"
        assert match.exact_shape
        assert match.describe() == "Gemma 3 (gemma-3-270m)"
        assert registered_matches([version], load_knowledge_base()) == {
            "gemma-3-270m": ["gemma3-270m@1"]
        }
    finally:
        db.close()


def test_same_shape_models_are_named_as_alternatives() -> None:
    meta = {
        "architecture": "llama",
        "parameters": 70_553_706_496,
        "block_count": 80,
        "embedding_length": 8192,
    }
    match = match_version(meta, load_knowledge_base())
    assert match is not None
    assert {match.entry.id, *match.alternatives} == {"llama-3.1-70b", "llama-3.3-70b"}


def test_shape_tells_apart_models_of_similar_size() -> None:
    kb = load_knowledge_base()
    mistral = {"architecture": "llama", "parameters": 7_300_000_000, "block_count": 32}
    falcon3 = {"architecture": "llama", "parameters": 7_300_000_000, "block_count": 28}
    first, second = match_version(mistral, kb), match_version(falcon3, kb)
    assert first is not None and first.entry.id == "mistral-7b-v0.3"
    assert second is not None and second.entry.id == "falcon3-7b"


def test_no_match_for_unknown_architecture_size_or_missing_metadata() -> None:
    kb = load_knowledge_base()
    assert match_version({"architecture": "mamba", "parameters": 2_800_000_000}, kb) is None
    assert match_version({"architecture": "gemma3", "parameters": 600_000_000}, kb) is None
    assert match_version({"architecture": "gemma3"}, kb) is None
    assert match_version({}, kb) is None
