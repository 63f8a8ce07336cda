"""Data-sheet numbers for GPUs, so ``--gpus 2xH100-80GB`` means something."""

from __future__ import annotations

import re

from modelyard.errors import InvalidInput
from modelyard.hardware.profile import GB, Gpu

# name: (memory GB, peak memory bandwidth GB/s, dense FP16/BF16 tensor TFLOPS), from the
# vendors' data sheets (SXM parts unless named PCIE; TFLOPS without sparsity).
KNOWN_GPUS: dict[str, tuple[float, float, float]] = {
    "H200-141GB": (141, 4800, 989),
    "H100-80GB": (80, 3350, 989),
    "H100-PCIE-80GB": (80, 2000, 756),
    "A100-80GB": (80, 2039, 312),
    "A100-40GB": (40, 1555, 312),
    "L40S-48GB": (48, 864, 362),
    "L4-24GB": (24, 300, 121),
    "A10-24GB": (24, 600, 125),
    "RTX4090-24GB": (24, 1008, 165),
    "RTX3090-24GB": (24, 936, 71),
    "RTX6000ADA-48GB": (48, 960, 364),
}

_SPEC = re.compile(r"^(?:(\d+)x)?([A-Za-z0-9.-]+?)(?:-(\d+)GB)?$")


def parse_gpus(spec: str) -> list[Gpu]:
    """``2xH100-80GB,1xL4-24GB`` → GPUs; an unknown name needs its memory (``-NNGB``)."""
    gpus: list[Gpu] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        match = _SPEC.match(part)
        if not match:
            raise InvalidInput(f"cannot read GPU spec {part!r} (expected e.g. 2xH100-80GB)")
        count = int(match.group(1) or 1)
        name = match.group(2).upper() + (f"-{match.group(3)}GB" if match.group(3) else "")
        known = KNOWN_GPUS.get(name)
        if known is None and match.group(3) is None:
            raise InvalidInput(
                f"unknown GPU {part!r}: give its memory (e.g. {part}-24GB) or one of "
                + ", ".join(sorted(KNOWN_GPUS))
            )
        memory_gb = known[0] if known else float(match.group(3))
        bandwidth = known[1] * GB if known else None
        tflops = known[2] if known else None
        if count < 1 or count > 64:
            raise InvalidInput(f"GPU count must be 1..64, got {count}")
        gpus.extend(
            Gpu(
                name=name,
                memory_bytes=int(memory_gb * GB),
                bandwidth_bytes_per_s=bandwidth,
                tflops=tflops,
            )
            for _ in range(count)
        )
    if not gpus:
        raise InvalidInput("no GPUs in the spec")
    return gpus


def datasheet_for(name: str, memory_bytes: int) -> tuple[float, float] | None:
    """(bandwidth bytes/s, TFLOPS) for a detected name such as 'NVIDIA H100 80GB HBM3'."""
    squashed = re.sub(r"[^A-Z0-9]", "", name.upper())
    for known, (memory_gb, bandwidth, tflops) in KNOWN_GPUS.items():
        model = known.rsplit("-", 1)[0].replace("-", "")
        close = abs(memory_bytes / GB - memory_gb) / memory_gb < 0.1
        if model in squashed and close and ("PCIE" in squashed) == ("PCIE" in model):
            return bandwidth * GB, tflops
    return None
