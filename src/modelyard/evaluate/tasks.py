"""Scoring one row: generate and compare, or compare options' log-likelihoods."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from modelyard.engines.base import Engine, Finish, Prompt, SamplingParams, prompt_text
from modelyard.engines.scoring import Scorer
from modelyard.evaluate.data import EvalRow
from modelyard.evaluate.metrics import GENERATION_METRICS, expected_choice


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    ttft_s: float | None


def generate(engine: Engine, prompt: Prompt, params: SamplingParams) -> Generation:
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    for event in engine.complete(prompt, params):
        if isinstance(event, Finish):
            return Generation(
                "".join(parts),
                event.prompt_tokens,
                event.completion_tokens,
                time.perf_counter() - started,
                first,
            )
        if first is None and event.text:
            first = time.perf_counter() - started
        parts.append(event.text)
    raise RuntimeError("engine stream ended without a Finish event")


def score_generation(
    metric: str, engine: Engine, row: EvalRow, prompt: Prompt, params: SamplingParams
) -> tuple[float, dict[str, Any]]:
    output = generate(engine, prompt, params)
    score = GENERATION_METRICS[metric](output.text, row)
    return score, {
        "output": output.text,
        "expected": row.expected,
        "latency_s": output.latency_s,
        "ttft_s": output.ttft_s,
        "prompt_tokens": output.prompt_tokens,
        "completion_tokens": output.completion_tokens,
    }


def option_text(prompt: str, option: str) -> str:
    """lm-eval's target delimiter: a space between prompt and option unless one is there."""
    if not prompt or prompt[-1].isspace() or option[:1].isspace():
        return option
    return " " + option


def score_choice(scorer: Scorer, row: EvalRow, prompt: Prompt) -> tuple[float, dict[str, Any]]:
    assert row.choices is not None
    right = expected_choice(row)
    started = time.perf_counter()
    text = prompt_text(prompt)
    scored = [scorer.loglikelihood(prompt, option_text(text, c)) for c in row.choices]
    logprobs = [s.logprob for s in scored]
    predicted = max(range(len(logprobs)), key=lambda i: logprobs[i])
    per_char = [lp / max(len(c), 1) for lp, c in zip(logprobs, row.choices, strict=True)]
    predicted_norm = max(range(len(per_char)), key=lambda i: per_char[i])
    return float(predicted == right), {
        "choices": list(row.choices),
        "logprobs": logprobs,
        "predicted": predicted,
        "predicted_text": row.choices[predicted],
        "expected_index": right,
        "correct_norm": predicted_norm == right,
        "latency_s": time.perf_counter() - started,
    }
