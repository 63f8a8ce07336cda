"""Build the profile of this machine: detection, bandwidth test, optional calibration run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from modelyard.catalog.registry import Registry
from modelyard.errors import InvalidInput, NotFound
from modelyard.hardware.bandwidth import measure_bandwidth
from modelyard.hardware.calibrate import calibration_from, measure_speed
from modelyard.hardware.detect import Detected
from modelyard.hardware.profile import Calibration, CostInputs, HardwareProfile

Say = Callable[[str], None]


def calibrate_with(
    registry: Registry, ref: str, *, n_threads: int | None, tokens: int = 32
) -> Calibration:
    version = registry.resolve(ref)
    if version.format != "gguf":
        raise InvalidInput(f"{version.ref} is not a GGUF model; calibration runs llama.cpp")
    path = registry.blobs.path_for(version.files[0].sha256)
    sample = measure_speed(path, n_threads=n_threads, tokens=tokens)
    return calibration_from(sample, model=version.ref, file_bytes=version.size_bytes)


def local_profile(
    name: str,
    detected: Detected,
    *,
    bandwidth_mb: int,
    cost: CostInputs,
    registry: Registry | None,
    model: str | None,
    n_threads: int | None,
    say: Say,
) -> HardwareProfile:
    say(f"measuring memory bandwidth ({bandwidth_mb} MiB copy)…")
    bandwidth = measure_bandwidth(bandwidth_mb)
    calibration = None
    if registry is not None:
        ref = model or "gemma3-270m"
        try:
            say(f"calibrating with {ref} (in-process llama.cpp)…")
            calibration = calibrate_with(registry, ref, n_threads=n_threads)
        except NotFound:
            if model is not None:
                raise
            say(
                "no gemma3-270m in the registry: skipping calibration "
                "(modelyard models import --default, then run this again)"
            )
    return HardwareProfile(
        name=name,
        description=f"detected on this machine ({detected.gpu_note})",
        cpu_model=detected.cpu_model,
        cpu_cores=detected.cpu_cores,
        ram_bytes=detected.ram_bytes,
        memory_bandwidth_bytes_per_s=bandwidth,
        gpus=detected.gpus,
        cost=cost,
        calibration=calibration,
        detected=True,
        updated_at=datetime.now(UTC),
    )
