"""bench/serving_bench.py's pure parts: prompts, percentiles, SSE parsing, summaries, ratios.

No server is started: the full run needs llama-server and the bundled model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sb() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "serving_bench", ROOT / "bench" / "serving_bench.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def frame(payload: dict[str, object]) -> str:
    return "data: " + json.dumps(payload)


def test_prompts_are_distinct_and_deterministic(sb: ModuleType) -> None:
    prompts = [sb.make_prompt(i) for i in range(2000)]
    assert len(set(prompts)) == len(prompts)
    assert sb.make_prompt(7) == prompts[7]
    body = sb.completion_body(3, 64)
    assert body["prompt"] == prompts[3] and body["seed"] == 3 and body["max_tokens"] == 64
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    chat = sb.schema_body(2, 96)
    assert chat["response_format"]["json_schema"]["schema"] == sb.SCHEMA
    assert chat["messages"][0]["role"] == "user"


def test_percentile_interpolates_between_ranks(sb: ModuleType) -> None:
    assert sb.percentile([], 50) is None
    assert sb.percentile([5.0], 99) == 5.0
    assert sb.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert sb.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0) == 1.0
    assert sb.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 100) == 5.0
    assert sb.percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)
    assert sb.percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_completion_stream_with_usage(sb: ModuleType) -> None:
    stream = sb.Stream()
    lines = [
        ": keep-alive",
        "",
        frame({"choices": [{"index": 0, "text": "Once", "finish_reason": None}]}),
        frame({"choices": [{"index": 0, "text": " upon", "finish_reason": None}]}),
        frame({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}),
        frame({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}),
        "data: [DONE]",
    ]
    for at, line in enumerate(lines):
        sb.feed(stream, line, at / 10)
    assert stream.ok and stream.finish_reason == "length"
    assert stream.ttft_s == pytest.approx(0.2)
    assert stream.chunks == 2 and stream.tokens == 3  # usage wins over counted chunks
    assert stream.last_s == pytest.approx(0.3)
    assert "".join(stream.text) == "Once upon"


def test_chat_stream_counts_chunks_without_usage(sb: ModuleType) -> None:
    stream = sb.Stream()
    for line in (
        frame({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}),
        frame({"choices": [{"index": 0, "delta": {"content": '{"a":'}}]}),
        frame({"choices": [{"index": 0, "delta": {"content": "1}"}}]}),
        frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        "data: [DONE]",
    ):
        sb.feed(stream, line, 1.0)
    assert stream.ok and stream.tokens == 2 and "".join(stream.text) == '{"a":1}'


def test_streams_cut_short_or_failed_are_not_completed(sb: ModuleType) -> None:
    no_done = sb.Stream()
    sb.feed(no_done, frame({"choices": [{"text": "x", "finish_reason": "stop"}]}), 0.1)
    assert not no_done.ok

    no_finish = sb.Stream()
    sb.feed(no_finish, frame({"choices": [{"text": "x"}]}), 0.1)
    sb.feed(no_finish, "data: [DONE]", 0.2)
    assert not no_finish.ok

    error_event = sb.Stream()
    sb.feed(error_event, frame({"choices": [{"text": "x", "finish_reason": "stop"}]}), 0.1)
    sb.feed(error_event, frame({"error": {"message": "worker crashed", "type": "x"}}), 0.2)
    sb.feed(error_event, "data: [DONE]", 0.3)
    assert not error_event.ok and error_event.error == "worker crashed"

    garbage = sb.Stream()
    sb.feed(garbage, "data: {not json", 0.1)
    assert garbage.error and garbage.error.startswith("bad frame")


def test_schema_validity(sb: ModuleType) -> None:
    good = {"name": "Ada", "city": "Oslo", "occupation": "baker", "age": 41}
    assert sb.schema_valid(json.dumps(good))
    assert not sb.schema_valid(json.dumps({**good, "age": "41"}))
    assert not sb.schema_valid(json.dumps({k: v for k, v in good.items() if k != "city"}))
    assert not sb.schema_valid('{"name": "Ada", ')
    assert not sb.schema_valid("[1, 2]")


def make_stream(sb: ModuleType, tokens: int, ttft_s: float, ok: bool = True) -> object:
    reason = "length" if ok else None
    return sb.Stream(
        ttft_s=ttft_s, last_s=ttft_s + 1.0, chunks=tokens, finish_reason=reason, done=ok
    )


def test_summarise_one_level(sb: ModuleType) -> None:
    streams = [make_stream(sb, 64, 0.1), make_stream(sb, 64, 0.3), make_stream(sb, 32, 0.2, False)]
    summary = sb.summarise(streams, wall_s=2.0)
    assert summary["started"] == 3 and summary["completed"] == 2 and summary["hit_max_tokens"] == 2
    assert summary["output_tokens"] == 160 and summary["tok_s"] == 80.0
    assert summary["ttft_p50_ms"] == pytest.approx(200.0)
    assert summary["decode_tok_s_p50"] == pytest.approx(63.0)  # (64 - 1) tokens in 1 s
    assert sb.summarise([], wall_s=0.0)["tok_s"] is None


def test_medians_over_repeats_and_ratios(sb: ModuleType) -> None:
    def level(tok_s: float, ttft: float) -> dict[str, object]:
        return {"started": 4, "completed": 4, "output_tokens": 256, "tok_s": tok_s,
                "ttft_p50_ms": ttft, "schema_valid": 0, "errors": []}  # fmt: skip

    results = {
        "direct": {"c1": [level(100, 50), level(90, 70), level(110, 60)]},
        "modelyard": {"c1": [level(80, 65), level(95, 75), level(85, 80)]},
    }
    results["direct"]["health"] = [{"probes": 10, "probes_failed": 0, "p50_ms": 2.0, "p99_ms": 9.0}]
    results["modelyard"]["health"] = [
        {"probes": 9, "probes_failed": 1, "p50_ms": 3.0, "p99_ms": 12.0}
    ]
    summary = sb.compare(results)
    assert list(summary) == ["c1", "health"]
    c1 = summary["c1"]
    assert c1["direct"]["tok_s"] == 100 and c1["modelyard"]["tok_s"] == 85
    assert c1["direct"]["started"] == 12 and c1["modelyard"]["completed"] == 12
    assert c1["ratio"]["tok_s"] == pytest.approx(0.85)
    assert c1["ratio"]["ttft_p50_ms"] == pytest.approx(75 / 60)
    health = summary["health"]
    assert health["modelyard"]["probes_failed"] == 1 and health["ratio"]["p50_ms"] == 1.5
    assert health["ratio"]["tok_s"] is None


def test_ratio_and_one_sided_runs(sb: ModuleType) -> None:
    assert sb.ratio(None, 10.0) is None and sb.ratio(5.0, 0.0) is None
    assert sb.ratio(5.0, 10.0) == 0.5
    only = sb.compare({"direct": {"c8": [{"started": 1, "completed": 1, "tok_s": 42.0}]}})
    assert only["c8"]["direct"]["tok_s"] == 42.0 and only["c8"]["ratio"]["tok_s"] is None
    sb.render({"summary": only})  # the table renders with one side missing


def test_cli_defaults(sb: ModuleType) -> None:
    args = sb.parse_args(["--concurrency", "1,2", "--only", "direct"])
    assert args.concurrency == [1, 2] and args.only == "direct"
    assert args.slots == 8 and args.max_tokens == 64 and args.repeats == 3


def test_child_pids_finds_a_child_of_this_process(sb: ModuleType) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in sb.child_pids(os.getpid())
    finally:
        child.kill()
        child.wait()
