"""Hardware: detection on this machine, bandwidth test, GPU specs, profile files, calibration."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.config import Settings
from modelyard.errors import InvalidInput, NotFound
from modelyard.hardware.bandwidth import measure_bandwidth
from modelyard.hardware.calibrate import calibration_from, measure_speed
from modelyard.hardware.detect import cpu_model, detect, nvidia_gpus, ram_bytes
from modelyard.hardware.gpus import accelerator_table, datasheet_for, known_gpus, parse_gpus
from modelyard.hardware.profile import GB, HardwareProfile
from modelyard.hardware.store import ProfileStore


def test_detect_this_machine() -> None:
    found = detect()
    assert found.cpu_cores >= 1
    assert found.ram_bytes > 512 * 1024 * 1024
    assert found.cpu_model  # /proc/cpuinfo names it on Linux
    gpus, note = nvidia_gpus()
    assert note  # says why there are none, or how many were found
    assert all(g.memory_bytes > 0 for g in gpus)


def test_proc_parsing(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    (tmp_path / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    assert cpu_model(tmp_path / "cpuinfo") == "Test CPU 9000"
    assert ram_bytes(tmp_path / "meminfo") == 16_384_000 * 1024


def test_bandwidth_is_measured() -> None:
    assert measure_bandwidth(size_mb=16, repeats=2) > 100e6
    with pytest.raises(ValueError, match="size_mb"):
        measure_bandwidth(size_mb=1)


def test_gpu_specs() -> None:
    gpus = parse_gpus("2xH100-80GB,l4-24gb")
    assert [g.name for g in gpus] == ["H100-80GB", "H100-80GB", "L4-24GB"]
    assert gpus[0].memory_bytes == 80 * GB and gpus[0].bandwidth_bytes_per_s == 3350 * GB
    assert gpus[0].tdp_watts == 700 and gpus[2].tdp_watts == 72
    custom = parse_gpus("1xMYGPU-24GB", bandwidth_gbs=900)
    assert custom[0].memory_bytes == 24 * GB and custom[0].bandwidth_bytes_per_s == 900 * GB
    # an unknown GPU without its bandwidth would make every speed unknown: refused
    with pytest.raises(InvalidInput, match=r"unknown GPU .*H100-80GB.*--gpu-bandwidth-gbs"):
        parse_gpus("1xMYGPU-24GB")
    with pytest.raises(InvalidInput, match="unknown GPU"):
        parse_gpus("2xMYSTERY", bandwidth_gbs=900)
    overridden = parse_gpus("1xH100-SXM-80GB", bandwidth_gbs=3000)
    assert overridden[0].name == "H100-80GB" and overridden[0].bandwidth_bytes_per_s == 3000 * GB
    assert parse_gpus("mi300x-192gb")[0].bandwidth_bytes_per_s == 5300 * GB
    with pytest.raises(InvalidInput, match="cannot read"):
        parse_gpus("two H100s")
    assert datasheet_for("NVIDIA H100 80GB HBM3", 85_520_809_984) == (3350 * GB, 989)
    assert datasheet_for("NVIDIA H100 PCIe", 85_520_809_984) == (2000 * GB, 756)
    assert datasheet_for("Some Other GPU", 8 * GB) is None


def test_profiles_are_saved_listed_and_removed(sqlite_settings: Settings) -> None:
    store = ProfileStore(sqlite_settings)
    profile = HardwareProfile(name="gpu-box", ram_bytes=256 * GB, gpus=parse_gpus("2xA100-80GB"))
    store.save(profile)
    assert store.load("gpu-box") == profile
    assert [p.name for p in store.list()] == ["gpu-box"]
    assert not list(store.directory.glob("*.tmp"))
    store.remove("gpu-box")
    with pytest.raises(NotFound, match="no hardware profile 'gpu-box'"):
        store.load("gpu-box")
    with pytest.raises(InvalidInput, match="invalid profile name"):
        store.load("../etc")


def test_broken_profile_file_is_a_clear_error(sqlite_settings: Settings) -> None:
    store = ProfileStore(sqlite_settings)
    store.directory.mkdir(parents=True)
    (store.directory / "bad.json").write_text('{"name": "bad"}')
    with pytest.raises(InvalidInput, match="not a valid hardware profile"):
        store.load("bad")


@pytest.mark.slow
def test_calibration_runs_the_real_default_model(default_gguf: Path) -> None:
    sample = measure_speed(default_gguf, n_threads=1, prompt_repeats=1, tokens=6)
    assert sample.prompt_tokens > 10
    assert sample.decode_tokens == 5
    calibration = calibration_from(sample, model="gemma3-270m@1", file_bytes=253_113_024)
    assert calibration.decode_tokens_per_s == pytest.approx(sample.decode_tokens / sample.decode_s)
    assert calibration.prefill_tokens_per_s is not None and calibration.prefill_tokens_per_s > 0


def test_gpus_through_nvml_bindings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The NVML code path, with a stand-in module shaped like nvidia-ml-py's ``pynvml``."""
    import sys
    import types

    calls: list[str] = []
    fake = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    class Memory:
        total = 85_520_809_984

    fake.NVMLError = NVMLError  # type: ignore[attr-defined]
    fake.nvmlInit = lambda: calls.append("init")  # type: ignore[attr-defined]
    fake.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    fake.nvmlDeviceGetCount = lambda: 2  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    fake.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"  # type: ignore[attr-defined]
    fake.nvmlDeviceGetMemoryInfo = lambda h: Memory()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus, note = nvidia_gpus()
    assert note == "2 GPU(s) via NVML" and calls == ["init", "shutdown"]
    assert [g.name for g in gpus] == ["NVIDIA H100 80GB HBM3"] * 2
    assert gpus[0].bandwidth_bytes_per_s == 3350 * GB and gpus[0].tflops == 989
    assert gpus[0].tdp_watts == 700

    def broken() -> None:
        raise NVMLError("driver not loaded")

    fake.nvmlInit = broken  # type: ignore[attr-defined]
    assert nvidia_gpus() == ([], "NVML unavailable: driver not loaded")


def test_the_accelerator_table_states_its_source_and_covers_the_usual_parts() -> None:
    table = accelerator_table()
    assert table.source == "vendor data sheet"
    assert all(a.source == "vendor data sheet" for a in table.accelerators)
    names = [a.name for a in table.accelerators]
    assert len(names) == len(set(names))
    for name in (
        "H100-80GB", "H100-PCIE-80GB", "H200-141GB", "A100-40GB", "A100-80GB", "L40S-48GB",
        "L4-24GB", "A10-24GB", "RTX4090-24GB", "RTX3090-24GB", "MI300X-192GB",
    ):  # fmt: skip
        entry = known_gpus()[name]
        assert entry.bandwidth_gbs > 0 and entry.tdp_watts > 0 and entry.memory_gb > 0
        assert name.endswith(f"-{entry.memory_gb:g}GB")
