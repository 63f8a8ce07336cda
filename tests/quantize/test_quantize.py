"""Quantize the tuned F16 merge with llama.cpp to Q8_0 and Q4_K_M; refuse requantizing."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from modelyard.engines.base import SamplingParams, collect
from modelyard.engines.loader import open_engine
from modelyard.errors import InvalidInput
from modelyard.quantize.chart import write_chart
from modelyard.quantize.report import build_report
from modelyard.quantize.service import QuantizeRequest, quantize_version
from tests.tune.tuned import TunedModel


@pytest.fixture(scope="module")
def quantized(tuned_model: TunedModel) -> dict[str, object]:
    registry, settings = tuned_model.registry, tuned_model.settings
    source = tuned_model.outcome.version.ref
    return {
        level: quantize_version(QuantizeRequest(source, level), registry, settings)
        for level in ("Q8_0", "q4_k_m")
    }


@pytest.mark.parametrize("level", ["Q8_0", "Q4_K_M"])
def test_quantized_version_has_lineage_and_generates(
    tuned_model: TunedModel, quantized: dict[str, object], level: str
) -> None:
    version = tuned_model.registry.get(f"ticket-router-{level.lower()}")
    source = tuned_model.outcome.version
    assert version.origin == "quantized" and version.parent == source.ref
    assert version.metadata["quantization"] == level
    lineage = version.lineage
    assert lineage["source"] == source.ref and lineage["source_digest"] == source.digest
    assert lineage["type"] == level and lineage["requantized"] is False
    assert lineage["source_size_bytes"] == source.size_bytes
    assert lineage["size_bytes"] == version.size_bytes < source.size_bytes
    engine = open_engine(version, tuned_model.registry.blobs, tuned_model.settings)
    try:
        text, finish = collect(
            engine.complete("The capital of France is", SamplingParams(max_tokens=6, temperature=0))
        )
    finally:
        engine.close()
    assert finish.completion_tokens > 0 and text.strip()


def test_q4_is_smaller_than_q8(tuned_model: TunedModel, quantized: dict[str, object]) -> None:
    q8 = tuned_model.registry.get("ticket-router-q8_0")
    q4 = tuned_model.registry.get("ticket-router-q4_k_m")
    assert q4.size_bytes < q8.size_bytes


def test_an_already_quantized_source_is_refused(tuned_model: TunedModel) -> None:
    registry = tuned_model.registry
    before = [v.ref for v in registry.list_versions()]
    with pytest.raises(InvalidInput) as caught:
        quantize_version(QuantizeRequest("gemma3-270m", "Q8_0"), registry, tuned_model.settings)
    message = caught.value.message
    assert "already quantized (Q4_K_M)" in message and "--allow-requantize" in message
    assert "rounding error" in message
    assert [v.ref for v in registry.list_versions()] == before
    assert not list((tuned_model.settings.home / "tmp").glob("quantize-*"))


def test_unknown_type_and_same_type_are_refused(tuned_model: TunedModel) -> None:
    source = tuned_model.outcome.version.ref
    with pytest.raises(InvalidInput, match="unknown quantization type 'Q9'"):
        quantize_version(QuantizeRequest(source, "Q9"), tuned_model.registry, tuned_model.settings)
    with pytest.raises(InvalidInput, match="already F16"):
        quantize_version(QuantizeRequest(source, "F16"), tuned_model.registry, tuned_model.settings)


def test_report_compares_the_levels_against_the_most_precise(
    tuned_model: TunedModel, quantized: dict[str, object], tmp_path: Path
) -> None:
    report = build_report(
        tuned_model.registry, tuned_model.settings, "ticket-router", speed_tokens=8
    )
    levels = [row.level for row in report.rows]
    assert levels == ["F16", "Q8_0", "Q4_K_M"]
    assert report.reference == "ticket-router@1"
    sizes = [row.size_bytes for row in report.rows]
    assert sizes == sorted(sizes, reverse=True)
    memory = [row.memory_bytes for row in report.rows]
    assert memory == sorted(memory, reverse=True) and memory[-1] > 0
    for row in report.rows:
        assert math.isfinite(row.perplexity) and row.perplexity > 1
        assert row.tokens_per_s > 0 and row.exact is None
    assert report.rows[0].perplexity_delta == 0.0
    # Each level's drift is measured against the most precise one. Which level drifts more
    # is a property of the model (a tiny tuned model need not follow the usual order), so
    # only the report's arithmetic is asserted, never an order between levels or a speed.
    reference = report.rows[0].perplexity
    for row in report.rows[1:]:
        assert row.perplexity_delta == pytest.approx(row.perplexity / reference - 1.0)
    chart = write_chart(report, tmp_path / "chart.svg").read_text()
    assert chart.startswith("<svg") and len(re.findall("<circle", chart)) == 3
    assert "Q4_K_M" in chart and "perplexity" in chart
