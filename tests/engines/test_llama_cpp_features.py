"""Log-probabilities, logit bias, grammars and embedding mode on the real default model."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.engines.base import SamplingParams, TextDelta, collect
from modelyard.engines.json_grammar import grammar_for
from modelyard.engines.llama_cpp import LlamaCppEngine
from modelyard.errors import InvalidInput

EOG = ((1, -100.0), (106, -100.0), (212, -100.0))


@pytest.fixture(scope="module")
def engine(default_gguf: Path) -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine(default_gguf, n_ctx=512, n_threads=1)
    yield engine
    engine.close()


def test_logprobs_follow_the_greedy_choice(engine: LlamaCppEngine) -> None:
    events = list(
        engine.complete("The sky is", SamplingParams(max_tokens=4, temperature=0, logprobs=3))
    )
    tokens = [t for e in events if isinstance(e, TextDelta) for t in e.logprobs]
    assert len(tokens) == 4
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "".join(t.token for t in tokens) == text
    for token in tokens:
        assert token.logprob <= 0 and len(token.top) == 3
        assert token.top[0].logprob >= token.top[1].logprob >= token.top[2].logprob
        assert math.isclose(token.logprob, token.top[0].logprob, abs_tol=1e-9)
        assert sum(math.exp(t.logprob) for t in token.top) <= 1 + 1e-6


def test_logit_bias_bans_tokens(engine: LlamaCppEngine) -> None:
    _, finish = collect(
        engine.complete("Hi", SamplingParams(max_tokens=12, logit_bias=EOG, seed=1))
    )
    assert finish.reason == "length" and finish.completion_tokens == 12
    with pytest.raises(InvalidInput):
        collect(engine.complete("Hi", SamplingParams(max_tokens=2, logit_bias=((10**9, 1.0),))))


def test_grammar_output_parses(engine: LlamaCppEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    grammar = grammar_for({"type": "json_schema", "json_schema": {"schema": schema}})
    text, finish = collect(
        engine.complete(
            "Answer in JSON:", SamplingParams(max_tokens=20, temperature=0, grammar=grammar)
        )
    )
    assert finish.reason == "stop"
    assert isinstance(json.loads(text)["ok"], bool)


def test_embedding_mode(default_gguf: Path) -> None:
    embedder = LlamaCppEngine(default_gguf, n_ctx=256, n_threads=1, embedding=True)
    try:
        vectors, tokens = embedder.embed(["a cat", "a dog"])
    finally:
        embedder.close()
    assert len(vectors) == 2 and len(vectors[0]) == 640
    assert all(math.isclose(sum(x * x for x in v), 1.0, abs_tol=1e-4) for v in vectors)
    assert tokens >= 4
