"""Data-sheet numbers for accelerators, so ``--gpus 2xH100-80GB`` means something.

The table ships in ``advisor/data/accelerators.json`` (package data): memory, peak memory
bandwidth, board power and dense FP16/BF16 tensor TFLOPS, each from the vendor's data sheet.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

from modelyard.errors import InvalidInput
from modelyard.hardware.profile import GB, Gpu


class Accelerator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Z0-9.-]+-\d+GB$")
    aliases: tuple[str, ...] = ()
    vendor: str
    memory_gb: float = Field(gt=0)
    bandwidth_gbs: float = Field(gt=0)
    tdp_watts: float = Field(gt=0)
    fp16_tflops: float = Field(gt=0)
    source: str = Field(min_length=1)


class AcceleratorTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    note: str = ""
    accelerators: tuple[Accelerator, ...] = Field(min_length=1)


@cache
def accelerator_table() -> AcceleratorTable:
    text = (
        resources.files("modelyard.advisor").joinpath("data/accelerators.json").read_text("utf-8")
    )
    return AcceleratorTable.model_validate_json(text)


@cache
def known_gpus() -> dict[str, Accelerator]:
    """Name (and each alias) → its data-sheet entry."""
    out: dict[str, Accelerator] = {}
    for acc in accelerator_table().accelerators:
        for key in (acc.name, *acc.aliases):
            out[key] = acc
    return out


def known_names() -> list[str]:
    return sorted(acc.name for acc in accelerator_table().accelerators)


_SPEC = re.compile(r"^(?:(\d+)x)?([A-Za-z0-9.-]+?)(?:-(\d+)GB)?$", re.IGNORECASE)


def parse_gpus(spec: str, *, bandwidth_gbs: float | None = None) -> list[Gpu]:
    """``2xH100-80GB,1xL4-24GB`` → GPUs with their data-sheet numbers.

    ``bandwidth_gbs`` overrides the data sheet's memory bandwidth; a GPU not in the table
    needs it, and its memory (``-NNGB``), or it is refused with the list of known names.
    """
    if bandwidth_gbs is not None and bandwidth_gbs <= 0:
        raise InvalidInput("GPU memory bandwidth must be positive", param="gpu_bandwidth_gbs")
    table = known_gpus()
    gpus: list[Gpu] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        match = _SPEC.match(part)
        if not match:
            raise InvalidInput(f"cannot read GPU spec {part!r} (expected e.g. 2xH100-80GB)")
        count = int(match.group(1) or 1)
        name = match.group(2).upper() + (f"-{match.group(3)}GB" if match.group(3) else "")
        known = table.get(name)
        if known is None and (match.group(3) is None or bandwidth_gbs is None):
            raise InvalidInput(
                f"unknown GPU {part!r}: use one of {', '.join(known_names())}, or give its "
                f"memory and bandwidth (e.g. {match.group(2)}-24GB --gpu-bandwidth-gbs 900)",
                param="gpus",
            )
        if count < 1 or count > 64:
            raise InvalidInput(f"GPU count must be 1..64, got {count}")
        if known is not None:
            gpu = Gpu(
                name=known.name,
                memory_bytes=int(known.memory_gb * GB),
                bandwidth_bytes_per_s=(bandwidth_gbs or known.bandwidth_gbs) * GB,
                tflops=known.fp16_tflops,
                tdp_watts=known.tdp_watts,
            )
        else:
            assert bandwidth_gbs is not None and match.group(3) is not None
            gpu = Gpu(
                name=name,
                memory_bytes=int(float(match.group(3)) * GB),
                bandwidth_bytes_per_s=bandwidth_gbs * GB,
            )
        gpus.extend(gpu.model_copy() for _ in range(count))
    if not gpus:
        raise InvalidInput("no GPUs in the spec")
    return gpus


def datasheet_for(name: str, memory_bytes: int) -> tuple[float, float] | None:
    """(bandwidth bytes/s, TFLOPS) for a detected name such as 'NVIDIA H100 80GB HBM3'."""
    acc = accelerator_for(name, memory_bytes)
    return (acc.bandwidth_gbs * GB, acc.fp16_tflops) if acc else None


def accelerator_for(name: str, memory_bytes: int) -> Accelerator | None:
    """The data-sheet entry a detected device name and memory size match, if any."""
    squashed = re.sub(r"[^A-Z0-9]", "", name.upper())
    for acc in accelerator_table().accelerators:
        model = acc.name.rsplit("-", 1)[0].replace("-", "")
        close = abs(memory_bytes / GB - acc.memory_gb) / acc.memory_gb < 0.1
        if model in squashed and close and ("PCIE" in squashed) == ("PCIE" in model):
            return acc
    return None
