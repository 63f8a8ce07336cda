"""Bits per weight of llama.cpp's GGUF quantization types (scales included)."""

from __future__ import annotations

from modelyard.errors import InvalidInput

# Block formats are exact (e.g. Q8_0: 32 int8 + one f16 scale = 8.5 bits); the K-quant
# "mixes" (_S/_M) average over the tensor types llama.cpp's quantize picks for a Llama-style
# model, as its quantize tool reports them.
BITS_PER_WEIGHT: dict[str, float] = {
    "F32": 32.0,
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.5625,
    "Q5_K_M": 5.70,
    "Q5_K_S": 5.54,
    "Q5_0": 5.5,
    "Q4_K_M": 4.89,
    "Q4_K_S": 4.58,
    "Q4_0": 4.5,
    "IQ4_XS": 4.25,
    "Q3_K_M": 3.91,
    "Q2_K": 3.35,
}
# llama.cpp keeps the output/embedding matrix at Q6_K or better in K-quant files.
EMBEDDING_MIN_BITS = 6.5625
DEFAULT_QUANTS = ("Q4_K_M", "Q5_K_M", "Q8_0", "F16")


def bits_per_weight(quant: str) -> float:
    try:
        return BITS_PER_WEIGHT[quant.upper()]
    except KeyError:
        raise InvalidInput(
            f"unknown quantization {quant!r} (known: {', '.join(BITS_PER_WEIGHT)})",
            param="quant",
        ) from None
