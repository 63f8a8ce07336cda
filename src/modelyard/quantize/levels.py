"""The quantization levels modelyard offers, and how precise each one is."""

from __future__ import annotations

from modelyard.errors import InvalidInput

# name → (llama.cpp file type constant name, approximate bits per weight)
LEVELS: dict[str, tuple[str, float]] = {
    "F32": ("LLAMA_FTYPE_ALL_F32", 32.0),
    "F16": ("LLAMA_FTYPE_MOSTLY_F16", 16.0),
    "BF16": ("LLAMA_FTYPE_MOSTLY_BF16", 16.0),
    "Q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", 8.5),
    "Q6_K": ("LLAMA_FTYPE_MOSTLY_Q6_K", 6.56),
    "Q5_K_M": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", 5.69),
    "Q5_K_S": ("LLAMA_FTYPE_MOSTLY_Q5_K_S", 5.54),
    "Q5_0": ("LLAMA_FTYPE_MOSTLY_Q5_0", 5.5),
    "Q4_K_M": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", 4.89),
    "Q4_K_S": ("LLAMA_FTYPE_MOSTLY_Q4_K_S", 4.58),
    "Q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", 4.5),
    "IQ4_XS": ("LLAMA_FTYPE_MOSTLY_IQ4_XS", 4.25),
    "Q3_K_M": ("LLAMA_FTYPE_MOSTLY_Q3_K_M", 3.91),
    "Q3_K_S": ("LLAMA_FTYPE_MOSTLY_Q3_K_S", 3.5),
    "Q2_K": ("LLAMA_FTYPE_MOSTLY_Q2_K", 2.96),
}
UNQUANTIZED = ("F32", "F16", "BF16")


def normalise_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LEVELS:
        raise InvalidInput(
            f"unknown quantization type {text!r}; choose one of: {', '.join(LEVELS)}",
            param="type",
        )
    return level


def ftype_of(level: str) -> int:
    import llama_cpp

    return int(getattr(llama_cpp, LEVELS[level][0]))


def bits_per_weight(level: str | None) -> float:
    """How precise a level is (unknown levels sort last)."""
    if level is None:
        return 0.0
    return LEVELS.get(level.upper(), ("", 0.0))[1]


def is_quantized(level: str | None) -> bool:
    return level is not None and level.upper() not in UNQUANTIZED
