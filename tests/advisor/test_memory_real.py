"""The memory estimate against the measured resident memory of the real default model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.advisor.estimate import estimate_memory
from modelyard.advisor.knowledge import load_knowledge_base

# Load the model with llama.cpp in a fresh process, decode a few tokens (so every weight
# page is touched), and report the growth of resident memory.
MEASURE = """
import json, sys
from pathlib import Path

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

before = rss()
from modelyard.engines.base import SamplingParams, collect
from modelyard.engines.llama_cpp import LlamaCppEngine
engine = LlamaCppEngine(Path(sys.argv[1]), n_ctx=int(sys.argv[2]), n_threads=1)
collect(engine.complete("The contract says", SamplingParams(max_tokens=4, temperature=0)))
print(json.dumps({"rss_delta": rss() - before}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("context", [4096, 16384])
def test_estimate_within_25_percent_of_measured_rss(default_gguf: Path, context: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(default_gguf), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])["rss_delta"]
    entry = load_knowledge_base().get("gemma-3-270m")
    assert entry is not None
    from_card = estimate_memory(entry.architecture, "Q4_K_M", context).total_bytes
    from_file = estimate_memory(
        entry.architecture, "Q4_K_M", context, file_bytes=default_gguf.stat().st_size
    ).total_bytes
    for estimate in (from_card, from_file):
        assert abs(estimate - measured) / measured <= 0.25, (estimate, measured)
