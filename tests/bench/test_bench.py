"""The bench against real HTTP servers on loopback, its summaries, chart and CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.bench.results import RequestResult, summarise_level
from modelyard.bench.runner import BenchConfig, run_sweep
from modelyard.bench.targets import EngineTarget, HttpOptions, HttpTarget, apply_event
from modelyard.bench.workload import make_prompt
from modelyard.engines.fake import FakeEngine
from tests.bench.openai_stub_server import ServerState, serve


def sweep(url: str, config: BenchConfig, key: str = "sk-test", **kw: object) -> list:  # type: ignore[type-arg]
    async def go() -> list:  # type: ignore[type-arg]
        target = HttpTarget(HttpOptions(url, "m", key, **kw), max(config.concurrency))  # type: ignore[arg-type]
        try:
            return await run_sweep(target, config)
        finally:
            await target.aclose()

    return asyncio.run(go())


def test_http_sweep_counts_and_latencies() -> None:
    state = ServerState(delay_s=0.005)
    config = BenchConfig((1, 4), prompt_tokens=20, max_tokens=6, requests=8, warmup=1)
    with serve(state) as url:
        levels = sweep(url, config)
    assert [lv.concurrency for lv in levels] == [1, 4]
    for level in levels:
        assert level.sent == level.completed + level.errors == 8
        assert level.errors == 0 and level.output_tokens == 8 * 6
        assert level.prompt_tokens_mean == 7  # from the usage chunk
        assert level.ttft_s["p50"] is not None and level.ttft_s["p50"] > 0
        assert level.itl_s["p50"] is not None  # chunk gaps (may coalesce on a busy client)
        # The server sleeps 5 ms before each of 6 chunks: no request can be faster.
        assert level.latency_s["p50"] is not None and level.latency_s["p50"] >= 0.03
        assert level.per_stream_tokens_per_s is not None and level.per_stream_tokens_per_s > 0
    assert state.requests == 1 + 16  # warm-up + two levels
    assert len({b["messages"][0]["content"] for b in state.bodies}) == 17  # no repeats
    assert state.max_in_flight == 4
    assert levels[1].aggregate_tokens_per_s > levels[0].aggregate_tokens_per_s
    body = state.bodies[-1]
    assert body["stream"] is True and body["max_tokens"] == 6 and body["temperature"] == 0.0
    assert body["messages"][0]["role"] == "user" and "ignore_eos" not in body


def test_errors_are_counted_not_hidden() -> None:
    state = ServerState(fail_every=3)
    config = BenchConfig((2,), prompt_tokens=5, max_tokens=3, requests=9, warmup=0)
    with serve(state) as url:
        [level] = sweep(url, config, endpoint="completions", ignore_eos=True)
        [unauthorised] = sweep(url, config, key="wrong")
    assert (level.sent, level.completed, level.errors) == (9, 6, 3)
    assert level.error_samples and level.error_samples[0].startswith("HTTP 500")
    assert state.bodies[0]["prompt"] and state.bodies[0]["ignore_eos"] is True
    assert state.bodies[0]["min_tokens"] == 3
    assert (unauthorised.completed, unauthorised.errors) == (0, 9)
    assert "HTTP 401" in unauthorised.error_samples[0]


def test_unreachable_server_is_errors() -> None:
    config = BenchConfig((1,), prompt_tokens=5, max_tokens=3, requests=2, warmup=0)
    [level] = sweep("http://127.0.0.1:9/v1", config)
    assert (level.sent, level.completed, level.errors) == (2, 0, 2)
    assert "ConnectError" in level.error_samples[0]


def test_in_process_target_with_fake_engine() -> None:
    engine = FakeEngine("one two three four five")
    config = BenchConfig((1, 2), prompt_tokens=4, max_tokens=3, requests=4, warmup=0)

    async def go() -> list:  # type: ignore[type-arg]
        target = EngineTarget("fake", engine, 2)
        try:
            return await run_sweep(target, config, engine.count_tokens)
        finally:
            await target.aclose()

    levels = asyncio.run(go())
    assert all(lv.completed == 4 and lv.output_tokens == 12 for lv in levels)
    assert engine.closed
    assert all(engine.count_tokens(p) >= 4 for p in engine.prompts)


def test_summaries_and_events() -> None:
    result = RequestResult()
    assert apply_event(result, json.dumps({"choices": [{"delta": {"content": "a"}}]}), 0.1) is False
    apply_event(result, json.dumps({"choices": [{"text": "b"}]}), 0.3)
    apply_event(result, json.dumps({"choices": [], "usage": {"completion_tokens": 2}}), 0.3)
    assert apply_event(result, "[DONE]", 0.3) is True
    assert (
        result.ttft_s == 0.1 and result.output_tokens == 2 and result.gaps() == [pytest.approx(0.2)]
    )
    result.ok, result.end_s = True, 0.3
    failed = RequestResult(error="HTTP 503: busy")
    level = summarise_level(3, [result, failed], 2.0)
    assert (level.sent, level.completed, level.errors, level.requests_per_s) == (2, 1, 1, 0.5)
    assert level.per_stream_tokens_per_s == pytest.approx(1 / 0.2)
    assert make_prompt(10, salt=1) != make_prompt(10, salt=2)


@pytest.mark.slow
def test_cli_against_http_writes_json_and_chart(tmp_path: Path) -> None:
    state = ServerState()
    chart = tmp_path / "bench.svg"
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home")}
    with serve(state) as url:
        done = subprocess.run(
            [sys.executable, "-m", "modelyard", "bench", "--model", "m", "--url", url,
             "--key", "sk-test", "--concurrency", "1,4", "--prompt-tokens", "8",
             "--max-tokens", "4", "--requests", "4", "--json", "--chart", str(chart)],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [lv["concurrency"] for lv in report["levels"]] == [1, 4]
    assert all(lv["sent"] == lv["completed"] + lv["errors"] == 4 for lv in report["levels"])
    assert report["config"]["max_tokens"] == 4
    assert chart.read_text().startswith("<svg") and "time to first token" in chart.read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "modelyard", "bench", "--model", "m", "--url", url,
         "--concurrency", "1,x"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "--concurrency must be a list" in bad.stderr
