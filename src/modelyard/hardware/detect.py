"""Detect this machine: CPU model and cores, RAM, NVIDIA GPUs (NVML when present)."""

from __future__ import annotations

import importlib
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.hardware.gpus import accelerator_for
from modelyard.hardware.profile import GB, Gpu


@dataclass(frozen=True)
class Detected:
    cpu_model: str | None
    cpu_cores: int
    ram_bytes: int
    gpus: list[Gpu] = field(default_factory=list)
    gpu_note: str = ""


def _read(path: Path) -> list[str]:
    """The lines of a /proc file; none where there is no /proc (not Linux)."""
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    for line in _read(cpuinfo):
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def ram_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in _read(meminfo):
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def nvidia_gpus() -> tuple[list[Gpu], str]:
    """GPUs through NVML (the optional ``nvidia-ml-py`` package); an empty list otherwise."""
    try:
        nvml: Any = importlib.import_module("pynvml")
    except ImportError:
        return [], "no NVML bindings installed (pip install nvidia-ml-py to detect GPUs)"
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return [], f"NVML unavailable: {exc}"
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
            sheet = accelerator_for(name, memory)
            gpus.append(
                Gpu(
                    name=name,
                    memory_bytes=memory,
                    bandwidth_bytes_per_s=sheet.bandwidth_gbs * GB if sheet else None,
                    tflops=sheet.fp16_tflops if sheet else None,
                    tdp_watts=sheet.tdp_watts if sheet else None,
                )
            )
        return gpus, f"{len(gpus)} GPU(s) via NVML"
    finally:
        nvml.nvmlShutdown()


def detect() -> Detected:
    gpus, note = nvidia_gpus()
    return Detected(
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count() or 1,
        ram_bytes=ram_bytes(),
        gpus=gpus,
        gpu_note=note,
    )
