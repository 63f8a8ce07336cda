"""The bench against a real ``modelyard serve`` (default model) at concurrency 1 and 4."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.harness import serve_env, serving_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, str]]]:
    home = tmp_path_factory.mktemp("gateway-home")
    env = serve_env(home, {"COLUMNS": "200"})
    created = subprocess.run(
        [sys.executable, "-m", "modelyard", "keys", "create", "bench", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    key = json.loads(created.stdout)["key"]
    with serving_gateway(home, home / "serve.log") as url:
        yield f"{url}/v1", key, env


def bench(url: str, key: str, env: dict[str, str], *extra: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "bench", "--model", "gemma3-270m", "--url", url,
         "--key", key, "--concurrency", "1,4", "--prompt-tokens", "16", "--max-tokens", "4",
         "--requests", "4", "--json", *extra],
        env=env, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr
    return dict(json.loads(done.stdout))


def test_bench_against_modelyard_serve(gateway: tuple[str, str, dict[str, str]]) -> None:
    url, key, env = gateway
    report = bench(url, key, env)
    levels = report["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 4]
    for level in levels:
        assert level["sent"] == level["completed"] + level["errors"] == 4
        assert level["completed"] == 4, level["error_samples"]
        assert 1 <= level["output_tokens_mean"] <= 4  # the gateway's usage, not a guess
        assert level["prompt_tokens_mean"] > 0
        assert level["ttft_s"]["p50"] > 0 and level["latency_s"]["p99"] >= level["ttft_s"]["p50"]
        assert level["aggregate_tokens_per_s"] > 0


def test_bench_counts_refused_requests(gateway: tuple[str, str, dict[str, str]]) -> None:
    url, _key, env = gateway
    report = bench(url, "my-wrong-key", env, "--warmup", "0")
    for level in report["levels"]:
        assert (level["sent"], level["completed"], level["errors"]) == (4, 0, 4)
        assert level["error_samples"][0].startswith("HTTP 401")
