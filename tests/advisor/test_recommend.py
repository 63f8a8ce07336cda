"""Recommend on synthetic profiles: memory fit, licence, language, task and speed filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.advisor.recommend import Candidate, Requirement, best_placement, recommend
from modelyard.errors import InvalidInput
from modelyard.hardware.gpus import parse_gpus
from modelyard.hardware.profile import GB, Calibration, HardwareProfile

LAPTOP = HardwareProfile(name="laptop", ram_bytes=16 * GB, memory_bandwidth_bytes_per_s=60 * GB)
GPU_80 = HardwareProfile(
    name="gpu80",
    ram_bytes=128 * GB,
    gpus=parse_gpus("1xA100-80GB"),
    memory_bandwidth_bytes_per_s=1e11,
)


def _by_id(results: list[Candidate]) -> dict[str, Candidate]:
    return {c.entry.id: c for c in results}


def test_16gb_laptop_cannot_hold_70b_at_q4() -> None:
    kb = load_knowledge_base()
    results = _by_id(recommend(kb, Requirement(context=4096), LAPTOP))
    llama = results["llama-3.3-70b"]
    assert llama.excluded
    assert llama.rank is None
    assert "does not fit laptop" in llama.exclusions[0]
    assert "at Q4_K_M" in llama.exclusions[0]
    placement, reasons = best_placement(kb.get("llama-3.3-70b"), LAPTOP, 4096)  # type: ignore[arg-type]
    assert placement is None and reasons
    # while a small model fits in the laptop's RAM
    small = results["llama-3.2-3b"]
    assert not small.excluded and small.placement is not None
    assert small.placement.device == "cpu"


def test_80gb_gpu_holds_70b_at_q4_or_better() -> None:
    results = _by_id(recommend(load_knowledge_base(), Requirement(context=32_000), GPU_80))
    llama = results["llama-3.3-70b"]
    assert not llama.excluded
    assert llama.placement is not None
    assert llama.placement.device == "gpu"
    assert llama.placement.quant in ("Q4_K_M", "Q5_K_M", "Q6_K")
    assert llama.placement.memory_bytes <= 0.95 * 80 * GB
    assert any("fits on gpu" in r for r in llama.reasons)
    # 405B does not fit in 80 GB of GPU memory nor in 128 GB of RAM
    assert results["llama-3.1-405b"].excluded


def test_commercial_licence_filter_excludes_research_only_models() -> None:
    kb = load_knowledge_base()
    results = recommend(kb, Requirement(licence="commercial"), GPU_80)
    ranked = [c for c in results if not c.excluded]
    assert ranked and all(c.entry.licence.commercial for c in ranked)
    qwen3b = _by_id(results)["qwen2.5-3b"]
    assert qwen3b.exclusions == ["licence qwen-research does not allow commercial use"]
    # without the filter it is a candidate
    assert not _by_id(recommend(kb, Requirement(licence="any"), GPU_80))["qwen2.5-3b"].excluded


def test_language_context_and_task_filters_give_reasons() -> None:
    need = Requirement(task="summarisation", languages=("de", "fr"), context=32_000)
    results = _by_id(recommend(load_knowledge_base(), need, GPU_80))
    assert "card lists no support for de, fr" in results["mistral-7b-v0.3"].exclusions
    assert "context 8,192 < 32,000 tokens asked" in results["gemma-2-9b"].exclusions
    phi3 = results["phi-3-mini-4k"].exclusions
    assert any(reason.startswith("not suited to summarisation") for reason in phi3)
    llama8 = results["llama-3.1-8b"]
    assert not llama8.excluded and "card lists de, fr" in llama8.reasons
    # a model whose card claims broad multilingual support is kept, with that said
    qwen3 = results["qwen3-8b"]
    assert any("broad multilingual" in r for r in qwen3.reasons)


def test_ranking_prefers_larger_models_that_fit_and_is_numbered() -> None:
    results = recommend(load_knowledge_base(), Requirement(context=8192), GPU_80)
    ranked = [c for c in results if not c.excluded]
    assert [c.rank for c in ranked] == list(range(1, len(ranked) + 1))
    ids = [c.entry.id for c in ranked]
    assert ids.index("llama-3.3-70b") < ids.index("llama-3.1-8b") < ids.index("smollm2-135m")
    assert all(c.obtain and "modelyard models import" in c.obtain for c in ranked)


def test_min_speed_excludes_slow_placements_and_calibration_is_used() -> None:
    calibrated = LAPTOP.model_copy(
        update={
            "calibration": Calibration(
                model="gemma3-270m@1",
                bytes_per_token=253_113_024,
                decode_tokens_per_s=24.0,
                measured_at=datetime.now(UTC),
            )
        }
    )
    need = Requirement(min_tokens_per_second=20)
    results = _by_id(recommend(load_knowledge_base(), need, calibrated))
    slow = results["llama-3.1-8b"]
    assert slow.excluded and slow.exclusions[0].startswith("too slow")
    fast = results["smollm2-135m"]
    assert not fast.excluded and fast.placement is not None
    assert "calibrated by gemma3-270m@1" in fast.placement.efficiency_source
    # efficiency = 24 tok/s x 253 MB / 60 GB/s; speed = efficiency x bandwidth / bytes per token
    assert fast.placement.tokens_per_second is not None
    assert fast.placement.tokens_per_second > 20


def test_registered_models_are_flagged_and_not_told_to_obtain() -> None:
    results = _by_id(
        recommend(
            load_knowledge_base(),
            Requirement(),
            LAPTOP,
            registered={"gemma-3-270m": ["gemma3-270m@1"]},
        )
    )
    gemma = results["gemma-3-270m"]
    assert gemma.in_registry == ["gemma3-270m@1"] and gemma.obtain is None
    assert results["smollm2-135m"].obtain is not None


def test_bad_requirement() -> None:
    with pytest.raises(InvalidInput, match="unknown task"):
        Requirement(task="poetry")
    with pytest.raises(InvalidInput, match="context"):
        Requirement(context=0)


def test_a_single_quantization_can_be_asked_for() -> None:
    need = Requirement(context=8192, quants=("Q4_K_M",))
    results = _by_id(recommend(load_knowledge_base(), need, GPU_80))
    placement = results["llama-3.3-70b"].placement
    assert placement is not None and placement.quant == "Q4_K_M"
    with pytest.raises(InvalidInput, match="unknown quantization"):
        Requirement(quants=("Q9",))


def test_a_model_of_unknown_speed_never_ranks_above_a_known_one() -> None:
    """The README's profile: one H100 (data-sheet bandwidth), 256 GB RAM of unknown speed."""
    profile = HardwareProfile(name="h100", ram_bytes=256 * GB, gpus=parse_gpus("1xH100-80GB"))
    need = Requirement(task="summarisation", languages=("de",), context=32_000)
    ranked = [c for c in recommend(load_knowledge_base(), need, profile) if not c.excluded]
    known = [c.speed_known for c in ranked]
    assert known[0] and False in known
    assert known == sorted(known, reverse=True)
    big = _by_id(ranked)["mixtral-8x22b"]  # the largest, so it would score first on size
    assert big.placement is not None and big.placement.device == "cpu"
    assert big.rank == len(ranked)
    assert any("speed unknown: the profile has no main-memory bandwidth" in r for r in big.reasons)
    # with the main memory's bandwidth its speed is known and size ranks it again
    fast = profile.model_copy(update={"memory_bandwidth_bytes_per_s": 400 * GB})
    again = _by_id(recommend(load_knowledge_base(), need, fast))["mixtral-8x22b"]
    assert again.speed_known and again.rank is not None and again.rank < big.rank
