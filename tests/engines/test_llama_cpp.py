"""Real generation with the llama.cpp engine on the real default model."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.engines.base import Finish, SamplingParams, TextDelta, collect
from modelyard.engines.llama_cpp import LlamaCppEngine
from modelyard.errors import InvalidInput


@pytest.fixture(scope="module")
def engine(default_gguf: Path):  # type: ignore[no-untyped-def]
    engine = LlamaCppEngine(default_gguf, n_ctx=512, n_threads=2)
    yield engine
    engine.close()


def test_greedy_generation_is_reproducible(engine: LlamaCppEngine) -> None:
    params = SamplingParams(max_tokens=12, temperature=0.0, seed=7)
    first, finish = collect(engine.complete("The capital of France is", params))
    second, _ = collect(engine.complete("The capital of France is", params))
    assert first == second
    assert first.strip()
    assert finish.reason == "length" and finish.completion_tokens == 12
    assert finish.prompt_tokens == engine.count_tokens("The capital of France is")


def test_seeded_sampling_is_reproducible(engine: LlamaCppEngine) -> None:
    params = SamplingParams(max_tokens=16, temperature=0.9, seed=1234)
    first, _ = collect(engine.complete("Once upon a time", params))
    second, _ = collect(engine.complete("Once upon a time", params))
    assert first == second


def test_streams_deltas_then_one_finish(engine: LlamaCppEngine) -> None:
    events = list(engine.complete("1, 2, 3, 4,", SamplingParams(max_tokens=8, temperature=0)))
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert isinstance(events[-1], Finish)


def test_stop_string_ends_generation(engine: LlamaCppEngine) -> None:
    text, finish = collect(
        engine.complete("1, 2, 3, 4,", SamplingParams(max_tokens=30, temperature=0, stop=(",",)))
    )
    assert "," not in text
    assert finish.reason == "stop"


def test_prompt_over_context_is_a_user_error(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidInput, match="exceeds the model's context"):
        collect(engine.complete("word " * 600, SamplingParams(max_tokens=10)))


def test_abandoned_stream_frees_the_engine(engine: LlamaCppEngine) -> None:
    stream = engine.complete("Once upon a time", SamplingParams(max_tokens=50, temperature=0))
    next(stream)
    stream.close()
    text, _ = collect(engine.complete("Hello", SamplingParams(max_tokens=3, temperature=0)))
    assert text
