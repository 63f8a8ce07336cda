"""``quantize report``: what each quantization level of a model costs and what it gives.

For every level in the family (see :mod:`modelyard.quantize.family`): file size, the
weights' memory once loaded (llama.cpp's own count), generation speed (greedy, fixed
prompt), perplexity on a reference text (:mod:`modelyard.engines.scoring`), and optionally
the exact-answer score on held-out chat rows. Deltas are against the most precise level.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.engines.llama_cpp import LlamaCppEngine
from modelyard.engines.scoring import LlamaCppScorer
from modelyard.errors import InvalidInput
from modelyard.quantize.family import family, level_of
from modelyard.tune.native_log import captured_stderr

REFERENCE_TEXT = (
    "A model registry keeps every version of a model together with where it came from. "
    "When a team fine-tunes a model on its own data, the new version records the base it "
    "started from, the data it saw and every setting of the run. Quantization stores the "
    "same weights with fewer bits: the file shrinks and generation gets faster, while the "
    "answers drift a little from those of the full-precision model. Measuring that drift "
    "on text and on the task itself tells an organisation which level it can afford. "
    "The capital of France is Paris. Water boils at one hundred degrees Celsius at sea "
    "level. The quick brown fox jumps over the lazy dog."
)
SPEED_PROMPT = "Write a short note to a colleague about the quarterly report:"


@dataclass(frozen=True)
class LevelRow:
    ref: str
    level: str
    size_bytes: int
    memory_bytes: int
    tokens_per_s: float
    perplexity: float
    exact: float | None
    perplexity_delta: float | None = None
    exact_delta: float | None = None


@dataclass(frozen=True)
class QuantReport:
    name: str
    reference: str
    rows: list[LevelRow]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": self.reference,
            "levels": [asdict(r) for r in self.rows],
        }


Progress = Callable[[str], None]


def _speed_and_memory(path: Path, threads: int | None, tokens: int) -> tuple[float, int]:
    import llama_cpp

    with captured_stderr():  # llama.cpp's loader notes
        llm: Any = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=256,
            n_threads=threads or os.cpu_count() or 1,
            verbose=False,
        )
    try:
        memory = int(llama_cpp.llama_model_size(llm.model))
        prompt = llm.tokenize(SPEED_PROMPT.encode(), add_bos=True)
        produced = 0
        started = time.perf_counter()
        for _ in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            produced += 1
            if produced >= tokens:
                break
        elapsed = time.perf_counter() - started
    finally:
        llm.close()
    return (produced / elapsed if elapsed > 0 else 0.0), memory


def _perplexity(path: Path, text: str, threads: int | None) -> float:
    with captured_stderr():
        scorer = LlamaCppScorer(path, n_ctx=512, n_threads=threads)
    try:
        tokens = scorer.tokenize(text, add_bos=True)[: scorer.context_length]
        return scorer.token_nll(tokens).perplexity
    finally:
        scorer.close()


def measure(
    version: ModelVersion,
    path: Path,
    settings: Settings,
    *,
    text: str,
    eval_path: Path | None,
    speed_tokens: int,
) -> LevelRow:
    speed, memory = _speed_and_memory(path, settings.n_threads, speed_tokens)
    perplexity = _perplexity(path, text, settings.n_threads)
    exact = None
    if eval_path is not None:
        from modelyard.tune.score import score_answers

        with captured_stderr():
            engine = LlamaCppEngine(path, n_ctx=512, n_threads=settings.n_threads)
        try:
            exact = score_answers(engine, version.metadata, eval_path).exact
        finally:
            engine.close()
    return LevelRow(
        version.ref, level_of(version), version.size_bytes, memory, speed, perplexity, exact
    )


def build_report(
    registry: Registry,
    settings: Settings,
    name: str,
    *,
    text: str = REFERENCE_TEXT,
    eval_path: Path | None = None,
    speed_tokens: int = 32,
    progress: Progress | None = None,
) -> QuantReport:
    versions = family(registry, name)
    if not versions:
        raise InvalidInput(f"{name} has no GGUF versions to compare")
    rows = []
    for version in versions:
        if progress is not None:
            progress(f"measuring {version.ref} ({level_of(version)})")
        path = registry.blobs.path_for(version.files[0].sha256)
        rows.append(
            measure(
                version, path, settings, text=text, eval_path=eval_path, speed_tokens=speed_tokens
            )
        )
    reference = rows[0]
    with_deltas = [
        LevelRow(
            **{
                **asdict(row),
                "perplexity_delta": row.perplexity / reference.perplexity - 1.0,
                "exact_delta": (
                    row.exact - reference.exact
                    if row.exact is not None and reference.exact is not None
                    else None
                ),
            }
        )
        for row in rows
    ]
    return QuantReport(name, reference.ref, with_deltas)
