"""Fuzz intake's readers of untrusted bytes with atheris, each in its own process.

Each target (tests/fuzz/targets.py) runs for a few seconds from a seed corpus of real and
crafted files. libFuzzer exits non-zero, printing the input, when the reader raises anything
but modelyard's refusal, runs over ``-timeout`` on one input, or over ``-rss_limit_mb``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.factories import (
    gguf_header_bytes,
    make_hf_directory,
    write_crafted_gguf,
    write_gguf_with_huge_string,
    write_safetensors,
    write_sentencepiece_model,
    write_tiny_gguf,
)

TARGETS = Path(__file__).with_name("targets.py")
JSON_DICT = Path(__file__).with_name("json.dict")
SECONDS_PER_TARGET = 8
REAL_HEADER_BYTES = 64 * 1024


def _gguf_seeds(corpus: Path, default_gguf: Path) -> None:
    with default_gguf.open("rb") as handle:  # the real model's header: its KV and vocabulary
        (corpus / "default-header").write_bytes(handle.read(REAL_HEADER_BYTES))
    write_tiny_gguf(corpus / "tiny.gguf")
    write_crafted_gguf(corpus / "vocab.gguf", tokens=["<unk>", "a", "b"], scores=[0.0, 1.0, 2.0])
    write_crafted_gguf(corpus / "dup.gguf", tokens=["<unk>", "a", "a"])
    write_gguf_with_huge_string(corpus / "huge-string.gguf")
    (corpus / "huge-counts").write_bytes(gguf_header_bytes(2**63, 2**63) + b"\0" * 64)


def _safetensors_seeds(corpus: Path) -> None:
    write_safetensors(
        corpus / "two.safetensors", {"embed.weight": np.ones((4, 3)), "norm": np.zeros((3,))}
    )
    write_safetensors(corpus / "empty.safetensors", {})


def _kinds_seeds(corpus: Path, scratch: Path) -> None:
    root = make_hf_directory(scratch / "hf")
    for name in ("config.json", "tokenizer_config.json", "README.md"):
        (corpus / name).write_bytes((root / name).read_bytes())
    write_sentencepiece_model(corpus / "tokenizer.model")


@pytest.mark.parametrize("target", ["gguf", "safetensors", "kinds"])
def test_reader_survives_fuzzing(target: str, default_gguf: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if target == "gguf":
        _gguf_seeds(corpus, default_gguf)
    elif target == "safetensors":
        _safetensors_seeds(corpus)
    else:
        _kinds_seeds(corpus, tmp_path)
    completed = subprocess.run(
        [
            sys.executable,
            str(TARGETS),
            target,
            str(corpus),
            f"-max_total_time={SECONDS_PER_TARGET}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            f"-max_len={REAL_HEADER_BYTES}",
            f"-artifact_prefix={tmp_path}/",
            "-seed=1",
            *([f"-dict={JSON_DICT}"] if target != "gguf" else []),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS_PER_TARGET + 120,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    output = completed.stderr + completed.stdout
    crashes = sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))
    )
    assert completed.returncode == 0 and not crashes, f"{crashes}\n{output[-6000:]}"
    assert "Done " in output
