"""The llama.cpp scorer on the real default model: sensible log-likelihoods, prefix reuse that
does not change results, perplexity arithmetic, and errors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.engines.scoring import LlamaCppScorer
from modelyard.errors import InvalidInput

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scorer(default_gguf: Path) -> Iterator[LlamaCppScorer]:
    opened = LlamaCppScorer(default_gguf, n_ctx=128, n_threads=2)
    yield opened
    opened.close()


def test_loglikelihoods_are_sensible_and_reuse_is_exact(
    scorer: LlamaCppScorer, default_gguf: Path
) -> None:
    context = "The capital of France is"
    paris = scorer.loglikelihood(context, " Paris")
    banana = scorer.loglikelihood(context, " banana")
    assert paris.logprob > banana.logprob and paris.logprob < 0 and paris.tokens == 1
    scorer.loglikelihood("Something else entirely", " here")  # evicts the shared prefix
    again = scorer.loglikelihood(context, " banana")
    assert again.logprob == pytest.approx(banana.logprob, abs=1e-3)
    fresh = LlamaCppScorer(default_gguf, n_ctx=128, n_threads=2)
    try:
        assert fresh.loglikelihood(context, " Paris").logprob == pytest.approx(
            paris.logprob, abs=1e-3
        )
    finally:
        fresh.close()
    # A two-token continuation is the sum of its tokens, each conditioned on the one before.
    two = scorer.loglikelihood(context, " Paris.")
    dot = scorer.loglikelihood(context + " Paris", ".")
    if two.tokens == 2:
        assert two.logprob == pytest.approx(paris.logprob + dot.logprob, abs=1e-2)


def test_token_nll_and_errors(scorer: LlamaCppScorer) -> None:
    tokens = scorer.tokenize("The sun rises in the east.", add_bos=True)
    nll = scorer.token_nll(tokens)
    assert nll.tokens == len(tokens) - 1 and nll.nll > 0
    assert nll.perplexity == pytest.approx(math.exp(nll.nll / nll.tokens))
    with pytest.raises(InvalidInput, match="exceeds the scorer's context"):
        scorer.token_nll(tokens * 40)
    with pytest.raises(InvalidInput, match="empty"):
        scorer.loglikelihood("x", "")
