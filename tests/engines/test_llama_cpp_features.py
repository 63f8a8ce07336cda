"""Embedding mode of the in-process llama.cpp engine on the real default model.

Log-probabilities, logit bias and JSON-schema decoding run in engine workers now
(tests/engines/test_workers.py).
"""

from __future__ import annotations

import math
from pathlib import Path

from modelyard.engines.llama_cpp import LlamaCppEngine


def test_embedding_mode(default_gguf: Path) -> None:
    embedder = LlamaCppEngine(default_gguf, n_ctx=256, n_threads=1, embedding=True)
    try:
        vectors, tokens = embedder.embed(["a cat", "a dog"])
    finally:
        embedder.close()
    assert len(vectors) == 2 and len(vectors[0]) == 640
    assert all(math.isclose(sum(x * x for x in v), 1.0, abs_tol=1e-4) for v in vectors)
    assert tokens >= 4
