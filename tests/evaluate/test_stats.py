"""Aggregates: bootstrap intervals are seeded, bracket the mean, and shrink with more data."""

from __future__ import annotations

import math

import pytest

from modelyard.evaluate.stats import bootstrap_mean, bootstrap_perplexity, percentile


def test_bootstrap_mean() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    first = bootstrap_mean(values)
    assert first == bootstrap_mean(values)  # seeded: the same data gives the same CI
    assert first.value == pytest.approx(0.7)
    assert 0.3 <= first.ci_low < 0.7 < first.ci_high <= 1.0
    wide, narrow = bootstrap_mean(values), bootstrap_mean(values * 20)
    assert narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low
    single = bootstrap_mean([0.5])
    assert (single.value, single.ci_low, single.ci_high, single.n) == (0.5, 0.5, 0.5, 1)
    assert bootstrap_mean([1.0, 1.0, 1.0]).ci_low == 1.0
    with pytest.raises(ValueError, match="no values"):
        bootstrap_mean([])


def test_bootstrap_perplexity_is_token_weighted() -> None:
    estimate = bootstrap_perplexity([10.0, 30.0], [10, 10])
    assert estimate.value == pytest.approx(math.exp(2.0))
    assert estimate.ci_low <= estimate.value <= estimate.ci_high


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
