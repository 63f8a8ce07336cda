"""Rank knowledge-base models against a requirement and a hardware profile, with reasons."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from modelyard.advisor.estimate import (
    DEFAULT_EFFICIENCY,
    bytes_per_token,
    decode_tokens_per_s,
    estimate_memory,
)
from modelyard.advisor.quant import bits_per_weight
from modelyard.advisor.schema import KnowledgeBase, ModelEntry
from modelyard.errors import InvalidInput
from modelyard.hardware.profile import HardwareProfile

TASKS = (
    "summarisation",
    "chat",
    "question-answering",
    "extraction",
    "classification",
    "translation",
    "code",
    "reasoning",
    "fine-tuning",
)
TASK_ALIASES = {"summarization": "summarisation", "qa": "question-answering"}
QUANT_PREFERENCE = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M")
GPU_USABLE = 0.95
RAM_USABLE = 0.85
SLOW_TOKENS_PER_S = 5

LicenceNeed = Literal["commercial", "any"]


@dataclass(frozen=True)
class Requirement:
    task: str | None = None
    languages: tuple[str, ...] = ()
    context: int = 4096
    licence: LicenceNeed = "any"
    min_tokens_per_second: float | None = None
    quants: tuple[str, ...] = QUANT_PREFERENCE
    """Quantizations to consider, most preferred first."""

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise InvalidInput(f"unknown task {self.task!r} (known: {', '.join(TASKS)})")
        if self.context < 1:
            raise InvalidInput("context must be a positive number of tokens")
        for quant in self.quants:
            bits_per_weight(quant)


def normalise_task(task: str | None) -> str | None:
    if task is None:
        return None
    task = task.strip().lower()
    return TASK_ALIASES.get(task, task)


@dataclass(frozen=True)
class Placement:
    quant: str
    device: str
    memory_bytes: int
    available_bytes: int
    tokens_per_second: float | None
    efficiency_source: str


@dataclass
class Candidate:
    entry: ModelEntry
    placement: Placement | None = None
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    exclusions: list[str] = field(default_factory=list)
    in_registry: list[str] = field(default_factory=list)
    obtain: str | None = None
    rank: int | None = None

    @property
    def excluded(self) -> bool:
        return bool(self.exclusions)

    @property
    def speed_known(self) -> bool:
        return self.placement is not None and self.placement.tokens_per_second is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "model": self.entry.id,
            "family": self.entry.family,
            "parameters": self.entry.architecture.parameters,
            "active_parameters": self.entry.architecture.active_parameters,
            "licence": self.entry.licence.id,
            "commercial_use": self.entry.licence.commercial,
            "licence_conditions": self.entry.licence.conditions,
            "context_length": self.entry.architecture.context_length,
            "languages": self.entry.languages.codes,
            "score": round(self.score, 3),
            "speed_known": self.speed_known,
            "placement": asdict(self.placement) if self.placement else None,
            "reasons": self.reasons,
            "exclusions": self.exclusions,
            "in_registry": self.in_registry,
            "obtain": self.obtain,
            "card": str(self.entry.card),
        }


def _placement(
    entry: ModelEntry, quant: str, context: int, profile: HardwareProfile, device: str
) -> Placement | None:
    arch = entry.architecture
    memory = estimate_memory(arch, quant, context)
    if device == "gpu":
        available, bandwidth = int(profile.gpu_memory_bytes * GPU_USABLE), profile.gpu_bandwidth
    else:
        available, bandwidth = int(profile.ram_bytes * RAM_USABLE), profile.cpu_bandwidth
    if memory.total_bytes > available:
        return None
    efficiency, source = DEFAULT_EFFICIENCY[device], "default efficiency"
    calibration = profile.calibration
    if calibration and calibration.device == device and bandwidth:
        measured = calibration.decode_tokens_per_s * calibration.bytes_per_token / bandwidth
        efficiency = min(1.0, measured)  # above 1 the model ran from cache, not memory
        source = f"calibrated by {calibration.model} ({calibration.decode_tokens_per_s:.1f} tok/s)"
    speed = None
    if bandwidth:
        per_token = bytes_per_token(arch, memory.weights_bytes, context)
        speed = decode_tokens_per_s(bandwidth, per_token, efficiency)
    return Placement(quant, device, memory.total_bytes, available, speed, source)


def _check(entry: ModelEntry, need: Requirement) -> list[str]:
    out = []
    lic = entry.licence
    if need.licence == "commercial" and not lic.commercial:
        out.append(f"licence {lic.id} does not allow commercial use")
    if entry.architecture.context_length < need.context:
        out.append(f"context {entry.architecture.context_length:,} < {need.context:,} tokens asked")
    missing = [lang for lang in need.languages if not entry.speaks(lang)]
    if missing:
        out.append(f"card lists no support for {', '.join(missing)}")
    if need.task and need.task not in entry.tasks:
        out.append(f"not suited to {need.task} (card tasks: {', '.join(entry.tasks)})")
    return out


def _score(candidate: Candidate, need: Requirement) -> None:
    entry, placement = candidate.entry, candidate.placement
    assert placement is not None
    arch = entry.architecture
    score = math.log10(arch.parameters / 1e8)
    candidate.reasons.append(
        f"{arch.parameters / 1e9:.1f}B parameters"
        + (f" ({arch.active_parameters / 1e9:.1f}B active)" if arch.active_parameters else "")
    )
    candidate.reasons.append(
        f"fits on {placement.device} at {placement.quant}: "
        f"{placement.memory_bytes / 1e9:.1f} of {placement.available_bytes / 1e9:.1f} GB"
    )
    quant_penalty = {"Q8_0": 0.0, "Q6_K": 0.02, "Q5_K_M": 0.05, "Q4_K_M": 0.1}
    score -= quant_penalty.get(placement.quant, 0.2)
    speed = placement.tokens_per_second
    if speed is not None:
        candidate.reasons.append(f"~{speed:.1f} tok/s decode ({placement.efficiency_source})")
        if speed < SLOW_TOKENS_PER_S:
            score -= 1.5 if speed < 1 else 1.0
            candidate.reasons.append(f"slow for interactive use (< {SLOW_TOKENS_PER_S} tok/s)")
    else:
        memory = "GPU" if placement.device == "gpu" else "main-memory"
        candidate.reasons.append(
            f"speed unknown: the profile has no {memory} bandwidth (ranked after every model "
            "with a known speed; give --bandwidth-gbs or calibrate with modelyard hardware detect)"
        )
    listed = [lang for lang in need.languages if lang in entry.languages.codes]
    claimed = [lang for lang in need.languages if lang not in listed]
    if listed:
        candidate.reasons.append(f"card lists {', '.join(listed)}")
    if claimed:
        score -= 0.1
        candidate.reasons.append(f"{', '.join(claimed)}: card claims broad multilingual support")
    if entry.benchmarks:
        score += 0.1
        candidate.reasons.append(
            "evidence: "
            + "; ".join(f"{b.name} {b.score:g} ({b.setting})" for b in entry.benchmarks)
        )
    if entry.licence.conditions:
        candidate.reasons.append(f"licence {entry.licence.id}: {entry.licence.conditions[0]}")
    else:
        candidate.reasons.append(f"licence {entry.licence.id}")
    candidate.score = score


def recommend(
    kb: KnowledgeBase,
    need: Requirement,
    profile: HardwareProfile,
    *,
    registered: dict[str, list[str]] | None = None,
) -> list[Candidate]:
    """All knowledge-base models: ranked ones first (best first), then the excluded ones."""
    registered = registered or {}
    candidates = []
    for entry in kb.models:
        candidate = Candidate(entry, in_registry=registered.get(entry.id, []))
        candidate.exclusions = _check(entry, need)
        if not candidate.exclusions:
            candidate.placement = _place(entry, need, profile, candidate.exclusions)
        if not candidate.exclusions:
            _score(candidate, need)
            if not candidate.in_registry:
                candidate.obtain = _obtain(entry, candidate.placement)
        candidates.append(candidate)
    ranked = sorted(
        (c for c in candidates if not c.excluded),
        key=lambda c: (
            not c.speed_known,  # a model whose speed is unknown never outranks a known one
            -round(c.score, 6),
            -c.entry.release_date.toordinal(),
            c.entry.id,
        ),
    )
    for position, candidate in enumerate(ranked, start=1):
        candidate.rank = position
    return ranked + [c for c in candidates if c.excluded]


def _place(
    entry: ModelEntry, need: Requirement, profile: HardwareProfile, exclusions: list[str]
) -> Placement | None:
    slow: Placement | None = None
    devices = ("gpu", "cpu") if profile.gpus else ("cpu",)
    for device in devices:
        for quant in need.quants:
            placement = _placement(entry, quant, need.context, profile, device)
            if placement is None:
                continue
            fast_enough = (
                need.min_tokens_per_second is None
                or placement.tokens_per_second is None
                or placement.tokens_per_second >= need.min_tokens_per_second
            )
            if fast_enough:
                return placement
            slow = slow or placement
    if slow is not None:
        exclusions.append(
            f"too slow: ~{slow.tokens_per_second or 0:.1f} tok/s at {slow.quant} on {slow.device} "
            f"< {need.min_tokens_per_second:g} asked"
        )
        return None
    smallest = estimate_memory(entry.architecture, need.quants[-1], need.context)
    exclusions.append(
        f"does not fit {profile.name}: needs {smallest.total_bytes / 1e9:.1f} GB at "
        f"{need.quants[-1]} with {need.context:,} tokens of context "
        f"(GPU {profile.gpu_memory_bytes / 1e9:.0f} GB, RAM {profile.ram_bytes / 1e9:.0f} GB)"
    )
    return None


def _obtain(entry: ModelEntry, placement: Placement | None) -> str:
    quant = placement.quant if placement else "Q4_K_M"
    return (
        f"a {quant} GGUF of {entry.weights} (convert with llama.cpp's convert_hf_to_gguf.py "
        f"and llama-quantize, or a published *{quant}.gguf), then "
        f"`modelyard models import FILE --name {entry.id}`"
    )


def registered_matches(versions: Sequence[Any], kb: KnowledgeBase) -> dict[str, list[str]]:
    """Knowledge-base id -> registry refs of versions matched to it."""
    from modelyard.advisor.matching import match_version

    out: dict[str, list[str]] = {}
    for version in versions:
        match = match_version(version.metadata, kb)
        if match is not None:
            out.setdefault(match.entry.id, []).append(version.ref)
    return out


def best_placement(
    entry: ModelEntry,
    profile: HardwareProfile,
    context: int,
    quants: tuple[str, ...] = QUANT_PREFERENCE,
) -> tuple[Placement | None, list[str]]:
    """Where and at which quantization ``entry`` runs best on ``profile`` (or why it cannot)."""
    reasons: list[str] = []
    placement = _place(entry, Requirement(context=context, quants=quants), profile, reasons)
    return placement, reasons
