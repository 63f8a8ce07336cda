"""A hardware profile: what a machine holds, how fast it reads memory, what it costs to run."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

GB = 1_000_000_000


class Gpu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    memory_bytes: int = Field(gt=0)
    bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)
    """Peak memory bandwidth from the vendor's data sheet (None when unknown)."""
    tflops: float | None = Field(default=None, gt=0)
    """Dense FP16/BF16 tensor throughput from the data sheet (prompt processing is bound by it)."""
    tdp_watts: float | None = Field(default=None, gt=0)
    """Board power from the data sheet (the default power draw of a profile built from it)."""


class Calibration(BaseModel):
    """A model actually run on this machine: what was measured and what that implies."""

    model_config = ConfigDict(extra="forbid")

    model: str
    """The registry reference (or file) that was run."""
    bytes_per_token: int = Field(gt=0)
    """Bytes of weights (plus KV cache) read per generated token by that model."""
    decode_tokens_per_s: float = Field(gt=0)
    prefill_tokens_per_s: float | None = Field(default=None, gt=0)
    device: str = "cpu"
    source: str = "modelyard hardware"
    measured_at: datetime


class CostInputs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = "USD"
    purchase_price: float = Field(default=0.0, ge=0)
    lifetime_years: float = Field(default=4.0, gt=0)
    power_watts: float = Field(default=0.0, ge=0)
    """Average draw while serving."""
    electricity_per_kwh: float = Field(default=0.0, ge=0)
    upkeep_per_year: float = Field(default=0.0, ge=0)
    """Hosting, support contracts, the share of an operator's time."""


class HardwareProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    description: str = ""
    cpu_model: str | None = None
    cpu_cores: int | None = Field(default=None, gt=0)
    ram_bytes: int = Field(gt=0)
    memory_bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)
    """Main memory bandwidth (measured for a detected machine, data sheet otherwise)."""
    gpus: list[Gpu] = Field(default_factory=list)
    cost: CostInputs = Field(default_factory=CostInputs)
    calibration: Calibration | None = None
    detected: bool = False
    updated_at: datetime | None = None

    @property
    def gpu_memory_bytes(self) -> int:
        return sum(g.memory_bytes for g in self.gpus)

    @property
    def gpu_tflops(self) -> float | None:
        known = [g.tflops for g in self.gpus if g.tflops]
        return min(known) if known else None

    @property
    def gpu_tdp_watts(self) -> float | None:
        """Sum of the GPUs' data-sheet board power, when every GPU's is known."""
        if not self.gpus or any(g.tdp_watts is None for g in self.gpus):
            return None
        return sum(g.tdp_watts or 0.0 for g in self.gpus)

    @property
    def cpu_bandwidth(self) -> float | None:
        return self.memory_bandwidth_bytes_per_s

    @property
    def gpu_bandwidth(self) -> float | None:
        """Layers split across GPUs run one after another: one GPU's bandwidth at a time."""
        known = [g.bandwidth_bytes_per_s for g in self.gpus if g.bandwidth_bytes_per_s]
        return min(known) if known else None
