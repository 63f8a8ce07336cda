"""Memory and speed arithmetic, checked by hand."""

from __future__ import annotations

import pytest

from modelyard.advisor.estimate import (
    OVERHEAD_FIXED,
    bytes_per_token,
    decode_tokens_per_s,
    estimate_memory,
    kv_bytes_per_token,
    prefill_tokens_per_s,
    weights_bytes,
)
from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.advisor.quant import bits_per_weight
from modelyard.advisor.schema import Architecture
from modelyard.errors import InvalidInput


def _arch(model_id: str) -> Architecture:
    entry = load_knowledge_base().get(model_id)
    assert entry is not None
    return entry.architecture


def test_kv_cache_of_llama_70b_by_hand() -> None:
    # 80 layers x (K and V) x 8 KV heads x 128 dims x 2 bytes = 327,680 bytes per token
    arch = _arch("llama-3.3-70b")
    assert kv_bytes_per_token(arch) == 80 * 2 * 8 * 128 * 2 == 327_680
    memory = estimate_memory(arch, "Q4_K_M", 32_000)
    assert memory.kv_cache_bytes == 327_680 * 32_000


def test_latent_attention_override() -> None:
    arch = _arch("deepseek-v3")
    assert kv_bytes_per_token(arch) == 61 * (512 + 64) * 2


def test_weights_grow_with_bits_and_embedding_stays_at_q6k_or_better() -> None:
    arch = _arch("llama-3.1-8b")
    sizes = [weights_bytes(arch, q) for q in ("Q4_K_M", "Q5_K_M", "Q8_0", "F16")]
    assert sizes == sorted(sizes)
    embedding = 128_256 * 4096
    body = arch.parameters - embedding
    assert weights_bytes(arch, "Q4_K_M") == int(body * 4.89 / 8 + embedding * 6.5625 / 8)
    assert weights_bytes(arch, "F16") == int(arch.parameters * 2)


def test_registered_file_size_replaces_the_weight_estimate() -> None:
    arch = _arch("gemma-3-270m")
    memory = estimate_memory(arch, "Q4_K_M", 1024, file_bytes=253_113_024)
    assert memory.weights_bytes == 253_113_024
    assert memory.overhead_bytes == int(OVERHEAD_FIXED + 0.05 * 253_113_024)
    assert memory.total_bytes == sum(
        (memory.weights_bytes, memory.kv_cache_bytes, memory.overhead_bytes)
    )


def test_moe_reads_only_active_weights_per_token() -> None:
    arch = _arch("mixtral-8x7b")
    weights = weights_bytes(arch, "Q4_K_M")
    per_token = bytes_per_token(arch, weights, context=0)
    assert per_token == int(weights * 12_900_000_000 / arch.parameters)
    assert decode_tokens_per_s(100e9, per_token, 0.5) == pytest.approx(0.5 * 100e9 / per_token)


def test_prefill_is_compute_bound() -> None:
    arch = _arch("llama-3.1-8b")
    assert prefill_tokens_per_s(arch, 989) == pytest.approx(0.3 * 989e12 / (2 * arch.parameters))


def test_unknown_quantization_is_a_clear_error() -> None:
    assert bits_per_weight("q4_k_m") == 4.89
    with pytest.raises(InvalidInput, match="unknown quantization 'Q3_X'"):
        bits_per_weight("Q3_X")
