"""A file llama.cpp cannot quantize: a clear fault, no version, no temp file left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import EngineFault, InvalidInput
from modelyard.intake.importer import import_path
from modelyard.quantize.levels import bits_per_weight, is_quantized, normalise_level
from modelyard.quantize.service import QuantizeRequest, quantize_version
from tests.factories import write_tiny_gguf


def test_llama_cpp_failure_is_an_engine_fault_and_leaves_nothing(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    from modelyard.store.blobs import open_blob_store
    from modelyard.store.database import Database

    db = Database(sqlite_settings.resolved_database_url)
    try:
        registry = Registry(db, open_blob_store(sqlite_settings), sqlite_settings)
        tiny = import_path(write_tiny_gguf(tmp_path / "tiny.gguf"), registry, sqlite_settings)
        assert tiny.metadata["quantization"] == "F32"
        with pytest.raises(EngineFault, match=r"could not quantize .* to Q8_0"):
            quantize_version(QuantizeRequest(tiny.ref, "Q8_0"), registry, sqlite_settings)
        assert [v.ref for v in registry.list_versions()] == [tiny.ref]
        assert not list((sqlite_settings.home / "tmp").glob("quantize-*"))
    finally:
        db.close()


def test_levels() -> None:
    assert normalise_level(" q4_k_m ") == "Q4_K_M"
    with pytest.raises(InvalidInput, match="choose one of"):
        normalise_level("Q1")
    assert bits_per_weight("F16") > bits_per_weight("Q8_0") > bits_per_weight("Q4_K_M")
    assert not is_quantized("F16") and not is_quantized(None) and is_quantized("Q8_0")
