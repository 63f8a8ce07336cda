"""Memory and decode-speed estimates for a model at a quantization and context.

Memory  = weights + KV cache + runtime overhead
  weights  = body parameters x bits/8 + embedding (vocab x hidden) at >= Q6_K bits/8,
             or the real file size when the model is already in the registry
  KV cache = layers x 2 (K and V) x kv_heads x head_dim x 2 bytes (f16) x context
  overhead = 150 MiB (runtime, compute buffers) + 5% of the weights
Decode speed = efficiency x bandwidth / bytes read per token, where bytes per token are the
weights used per token (active ones for mixture-of-experts) plus the KV cache read at half
the context, and efficiency comes from a model actually measured on that machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.advisor.quant import EMBEDDING_MIN_BITS, bits_per_weight
from modelyard.advisor.schema import Architecture

OVERHEAD_FIXED = 150 * 1024 * 1024
OVERHEAD_SHARE = 0.05
DEFAULT_EFFICIENCY = {"gpu": 0.6, "cpu": 0.5}


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes


def weights_bytes(arch: Architecture, quant: str) -> int:
    bits = bits_per_weight(quant)
    embedding = (arch.vocab_size or 0) * arch.hidden_size
    embedding = min(embedding, arch.parameters)
    body = arch.parameters - embedding
    return int(body * bits / 8 + embedding * max(bits, EMBEDDING_MIN_BITS) / 8)


def kv_bytes_per_token(arch: Architecture) -> int:
    if arch.kv_bytes_per_token_f16:
        return arch.kv_bytes_per_token_f16
    return arch.layers * 2 * arch.kv_heads * arch.head_dim * 2


def estimate_memory(
    arch: Architecture, quant: str, context: int, *, file_bytes: int | None = None
) -> MemoryEstimate:
    weights = file_bytes if file_bytes is not None else weights_bytes(arch, quant)
    return MemoryEstimate(
        weights_bytes=weights,
        kv_cache_bytes=kv_bytes_per_token(arch) * context,
        overhead_bytes=int(OVERHEAD_FIXED + OVERHEAD_SHARE * weights),
    )


def bytes_per_token(arch: Architecture, weights: int, context: int) -> int:
    """Bytes read from memory to generate one token."""
    active_share = arch.parameters_per_token / arch.parameters
    return int(weights * active_share + kv_bytes_per_token(arch) * context / 2)


def decode_tokens_per_s(bandwidth: float, per_token: int, efficiency: float) -> float:
    return efficiency * bandwidth / per_token


PREFILL_UTILISATION = 0.3
"""Share of a GPU's dense tensor throughput prompt processing reaches (a cautious figure)."""


def prefill_tokens_per_s(arch: Architecture, tflops: float) -> float:
    """Prompt tokens per second when compute-bound: 2 FLOPs per active parameter per token."""
    return PREFILL_UTILISATION * tflops * 1e12 / (2 * arch.parameters_per_token)
