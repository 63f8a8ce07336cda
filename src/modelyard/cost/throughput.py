"""How many tokens per second a machine serves: given, estimated for a model, or measured."""

from __future__ import annotations

from typing import Any

from modelyard.advisor.estimate import prefill_tokens_per_s
from modelyard.advisor.recommend import best_placement
from modelyard.advisor.schema import KnowledgeBase
from modelyard.cost.compare import Throughput
from modelyard.errors import InvalidInput, NotFound
from modelyard.hardware.profile import HardwareProfile


def resolve_throughput(
    profile: HardwareProfile,
    kb: KnowledgeBase,
    *,
    model: str | None = None,
    tokens_per_second: float | None = None,
    prefill_tokens_per_second: float | None = None,
    streams: int = 1,
    context: int = 4096,
    quant: str | None = None,
) -> Throughput:
    """Explicit numbers win; else the estimate for ``model``; else the profile's calibration.

    ``streams`` multiplies the single-stream decode estimate: batching that many requests
    at once is assumed to cost no extra memory reads (true while decode is bandwidth-bound;
    measure it with the benchmark before relying on it).
    """
    if streams < 1:
        raise InvalidInput("--streams must be at least 1", param="streams")
    calibration = profile.calibration
    prefill_ratio = None
    if calibration and calibration.prefill_tokens_per_s:
        prefill_ratio = calibration.prefill_tokens_per_s / calibration.decode_tokens_per_s
    if tokens_per_second is not None:
        return Throughput(tokens_per_second, prefill_tokens_per_second, "given on the command line")
    if model is not None:
        entry = kb.get(model)
        if entry is None:
            raise NotFound(f"no model {model!r} in the knowledge base (see modelyard recommend)")
        if quant is not None:
            placement, reasons = best_placement(entry, profile, context, (quant.upper(),))
        else:
            placement, reasons = best_placement(entry, profile, context)
        if placement is None:
            raise InvalidInput(f"{model} cannot run on {profile.name}: {'; '.join(reasons)}")
        if placement.tokens_per_second is None:
            raise InvalidInput(
                f"{profile.name} has no memory bandwidth: give --tokens-per-second instead"
            )
        decode = placement.tokens_per_second * streams
        prefill = prefill_tokens_per_second
        if prefill is None and placement.device == "gpu" and profile.gpu_tflops:
            prefill = prefill_tokens_per_s(entry.architecture, profile.gpu_tflops)
        elif prefill is None and placement.device == "cpu" and prefill_ratio:
            prefill = placement.tokens_per_second * prefill_ratio
        prefill_text = f", prefill {prefill:,.0f} tok/s" if prefill else ""
        return Throughput(
            decode,
            prefill,
            f"estimated: {model} at {placement.quant} on {placement.device}, "
            f"{placement.tokens_per_second:.1f} tok/s x {streams} stream(s){prefill_text} "
            f"({placement.efficiency_source})",
        )
    if calibration is not None:
        return Throughput(
            calibration.decode_tokens_per_s * streams,
            prefill_tokens_per_second or calibration.prefill_tokens_per_s,
            f"measured: {calibration.model} on {profile.name} x {streams} stream(s)",
        )
    raise InvalidInput(
        f"no throughput for {profile.name}: give --model (an estimate), --tokens-per-second, "
        "or calibrate the profile (modelyard hardware detect)"
    )


def throughput_from_bench(data: Any, origin: str) -> Throughput:
    """Sustained throughput from ``modelyard bench --json`` output.

    Decode: the best aggregate output tokens/s over the concurrency levels. Prefill: the mean
    prompt length over the median time to first token at the lowest concurrency (an
    underestimate: that time also holds queueing and the first decode step).
    """
    try:
        levels = [lv for lv in data["levels"] if lv["completed"] > 0]
        if not levels:
            raise InvalidInput(f"{origin}: no completed requests in the benchmark")
        best = max(levels, key=lambda lv: float(lv["aggregate_tokens_per_s"]))
        first = min(levels, key=lambda lv: int(lv["concurrency"]))
        prompt, ttft = first.get("prompt_tokens_mean"), first["ttft_s"].get("p50")
        decode = float(best["aggregate_tokens_per_s"])
        target = str(data.get("target", "?"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{origin} is not `modelyard bench --json` output ({exc})") from exc
    if decode <= 0:
        raise InvalidInput(f"{origin}: the benchmark measured no tokens")
    prefill = float(prompt) / float(ttft) if prompt and ttft else None
    return Throughput(
        decode,
        prefill,
        f"measured by modelyard bench: {target}, {decode:.1f} tok/s at concurrency "
        f"{best['concurrency']}",
    )
