"""Calibrate a profile: run a real model in-process and measure prefill and decode speed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from modelyard.engines.base import Finish, SamplingParams, TextDelta
from modelyard.engines.llama_cpp import LlamaCppEngine
from modelyard.errors import EngineFault
from modelyard.hardware.profile import Calibration

PROMPT = (
    "The contract between the supplier and the customer sets out the terms of delivery, "
    "payment, warranty and liability. "
)


@dataclass(frozen=True)
class SpeedSample:
    prompt_tokens: int
    prefill_s: float
    decode_tokens: int
    decode_s: float


def measure_speed(
    model_path: Path, *, n_threads: int | None = None, prompt_repeats: int = 8, tokens: int = 32
) -> SpeedSample:
    """Prefill a ~200-token prompt, then time ``tokens`` greedy decode steps."""
    engine = LlamaCppEngine(model_path, n_ctx=1024, n_threads=n_threads)
    try:
        prompt = PROMPT * prompt_repeats
        params = SamplingParams(max_tokens=tokens, temperature=0.0, seed=0)
        start = time.perf_counter()
        first: float | None = None
        finish: Finish | None = None
        for event in engine.complete(prompt, params):
            if isinstance(event, TextDelta) and first is None and event.text:
                first = time.perf_counter()
            elif isinstance(event, Finish):
                finish = event
        end = time.perf_counter()
    finally:
        engine.close()
    if finish is None or first is None or finish.completion_tokens < 2:
        raise EngineFault("the calibration run produced too few tokens to measure")
    return SpeedSample(
        prompt_tokens=finish.prompt_tokens,
        prefill_s=first - start,
        decode_tokens=finish.completion_tokens - 1,
        decode_s=end - first,
    )


def calibration_from(sample: SpeedSample, *, model: str, file_bytes: int) -> Calibration:
    """Every weight is read once per generated token on a dense model."""
    return Calibration(
        model=model,
        bytes_per_token=file_bytes,
        decode_tokens_per_s=sample.decode_tokens / sample.decode_s,
        prefill_tokens_per_s=sample.prompt_tokens / sample.prefill_s,
        device="cpu",
        source="modelyard hardware detect (in-process llama.cpp)",
        measured_at=datetime.now(UTC),
    )
