"""Aggregates: mean with a percentile-bootstrap confidence interval, and latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int


def bootstrap_mean(
    values: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Estimate:
    """The mean and a percentile-bootstrap interval (seeded: the same data gives the same CI)."""
    if not values:
        raise ValueError("no values to aggregate")
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    if len(data) == 1:
        return Estimate(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(mean, float(low), float(high), len(data))


def bootstrap_perplexity(
    nll: Sequence[float], tokens: Sequence[int], *, resamples: int = 1000, seed: int = 0
) -> Estimate:
    """Corpus perplexity exp(sum nll / sum tokens) with a bootstrap over windows."""
    nll_a = np.asarray(nll, dtype=np.float64)
    tok_a = np.asarray(tokens, dtype=np.float64)
    value = math.exp(nll_a.sum() / tok_a.sum())
    if len(nll_a) == 1:
        return Estimate(value, value, value, 1)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(nll_a), size=(resamples, len(nll_a)))
    samples = np.exp(nll_a[picks].sum(axis=1) / tok_a[picks].sum(axis=1))
    low, high = np.percentile(samples, [2.5, 97.5])
    return Estimate(value, float(low), float(high), len(nll_a))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation), or None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
