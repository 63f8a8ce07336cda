"""The shipped knowledge base: schema-valid, broad, sourced; bad files are refused clearly."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.errors import InvalidInput


def _raw() -> dict[str, object]:
    text = resources.files("modelyard.advisor").joinpath("data/models.json").read_text()
    data: dict[str, object] = json.loads(text)
    return data


def test_shipped_knowledge_base_is_valid_and_broad() -> None:
    kb = load_knowledge_base()
    assert len(kb.models) >= 30
    families = {m.family for m in kb.models}
    for family in (
        "Llama 3.1",
        "Llama 3.2",
        "Llama 3.3",
        "Gemma 2",
        "Gemma 3",
        "Mistral 7B",
        "Mixtral",
        "Qwen 2.5",
        "Qwen 3",
        "Phi-3",
        "Phi-4",
        "Falcon",
        "DeepSeek-V3",
        "OLMo 2",
        "SmolLM2",
    ):
        assert family in families, family
    for entry in kb.models:
        for url in (entry.card, entry.architecture.source, entry.licence.source):
            assert url.scheme == "https"
        for bench in entry.benchmarks:
            assert bench.source.scheme == "https"


def test_mixture_of_experts_entries_give_active_parameters() -> None:
    kb = load_knowledge_base()
    for model_id in ("mixtral-8x7b", "mixtral-8x22b", "qwen3-30b-a3b", "deepseek-v3"):
        arch = kb.get(model_id)
        assert arch is not None
        assert arch.architecture.active_parameters is not None
        assert arch.architecture.active_parameters < arch.architecture.parameters / 3


def test_licence_facts_that_filters_rely_on() -> None:
    kb = load_knowledge_base()
    qwen3b, llama, gemma = kb.get("qwen2.5-3b"), kb.get("llama-3.3-70b"), kb.get("gemma-3-270m")
    assert qwen3b is not None and llama is not None and gemma is not None
    assert qwen3b.licence.commercial is False
    assert llama.licence.commercial is True
    assert any("700 million" in c for c in llama.licence.conditions)
    assert gemma.licence.id == "gemma"
    assert any("Prohibited Use" in c for c in gemma.licence.conditions)


def test_default_model_entry_matches_the_bundled_file(default_gguf: Path) -> None:
    from modelyard.intake.gguf_reader import read_gguf_metadata

    meta = read_gguf_metadata(default_gguf, timeout_s=30, memory_mb=2048)
    entry = load_knowledge_base().get("gemma-3-270m")
    assert entry is not None
    arch = entry.architecture
    assert meta["architecture"] == arch.gguf_architecture == "gemma3"
    assert meta["parameters"] == arch.parameters
    assert meta["block_count"] == arch.layers
    assert meta["embedding_length"] == arch.hidden_size
    assert meta["head_count"] == arch.attention_heads
    assert meta["context_length"] == arch.context_length
    assert meta["vocab_size"] == arch.vocab_size


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["models"].append(dict(d["models"][0])), "duplicate model ids"),
        (lambda d: d["models"][0]["languages"].update(codes=["german"]), "ISO 639-1"),
        (
            lambda d: d["models"][0]["architecture"].update(active_parameters=10**13),
            "active_parameters exceeds",
        ),
        (lambda d: d["models"][0]["licence"].pop("commercial"), "commercial"),
        (lambda d: d["models"][0].update(card="not a url"), "card"),
    ],
)
def test_invalid_knowledge_base_is_refused(tmp_path: Path, mutate: object, message: str) -> None:
    data = _raw()
    assert callable(mutate)
    mutate(data)
    path = tmp_path / "kb.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match=message):
        load_knowledge_base(path)


def test_unreadable_knowledge_base(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        load_knowledge_base(tmp_path / "missing.json")
