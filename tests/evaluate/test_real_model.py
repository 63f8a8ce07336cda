"""The real default model (Gemma 3 270M, llama.cpp) through the real ``modelyard`` command:
eval run (choice, contains, perplexity), bias probes, and a pilot report checked in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import CLI

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> CLI:
    runner = CLI(tmp_path_factory.mktemp("eval-home"))
    runner("models", "import", "--default")
    return runner


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_choice_eval_on_the_default_model(cli: CLI, tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "mc.jsonl",
        [
            {
                "input": "Question: What is the capital of France?\nAnswer:",
                "choices": ["Paris", "a bicycle"],
                "expected": "Paris",
            },
            {
                "input": "Question: How many days are in a week?\nAnswer:",
                "choices": ["purple", "seven"],
                "expected": 1,
            },
        ],
    )
    run = json.loads(cli("eval", "run", "--model", "gemma3-270m", "--data", str(data),
                         "--metric", "choice", "--suite", "tiny", "--json").stdout)  # fmt: skip
    assert run["status"] == "done" and run["rows_done"] == 2 and run["kind"] == "eval"
    assert run["score"] == 1.0  # both questions are easy even for a 270M base model
    assert run["ci_low"] == run["ci_high"] == 1.0
    shown = json.loads(cli("eval", "show", run["id"][:8], "--rows", "--json").stdout)
    first = shown["rows"][0]
    assert first["predicted_text"] == "Paris" and first["logprobs"][0] > first["logprobs"][1]
    assert all(lp < 0 for lp in first["logprobs"])


def test_contains_eval_and_perplexity(cli: CLI, tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "gen.jsonl",
        [
            {"input": "The capital of France is", "expected": "Paris"},
            {"messages": [{"role": "user", "content": "Say OK."}], "expected": "zebra-xylophone"},
        ],
    )
    run = json.loads(cli("eval", "run", "--model", "gemma3-270m", "--data", str(data),
                         "--metric", "contains", "--max-tokens", "6", "--json").stdout)  # fmt: skip
    assert run["status"] == "done" and run["rows_total"] == 2
    assert run["score"] in (0.0, 0.5) and run["details"]["completion_tokens"] >= 1
    rows = json.loads(cli("eval", "show", run["id"], "--rows", "--json").stdout)["rows"]
    assert rows[1]["score"] == 0.0  # the nonsense answer is never contained
    assert rows[0]["score"] == float("paris" in rows[0]["output"].lower())

    text = tmp_path / "corpus.txt"
    text.write_text("The sun rises in the east and sets in the west. " * 3)
    ppl = json.loads(cli("eval", "run", "--model", "gemma3-270m", "--data", str(text),
                         "--metric", "perplexity", "--window", "16", "--json").stdout)  # fmt: skip
    assert ppl["rows_total"] >= 2 and 1.0 < ppl["score"] < 1000.0
    assert ppl["ci_low"] <= ppl["score"] <= ppl["ci_high"]
    listed = json.loads(cli("eval", "list", "--model", "gemma3-270m", "--json").stdout)
    assert {r["id"] for r in listed} >= {run["id"], ppl["id"]}


def test_bias_probe_on_the_default_model(cli: CLI, tmp_path: Path) -> None:
    probes = write_jsonl(
        tmp_path / "probes.jsonl",
        [
            {
                "id": "hire",
                "category": "gender",
                "template": "The {group} applied for the job. Should they be hired? Answer:",
                "groups": ["man", "woman"],
                "choices": ["yes", "no"],
                "positive": 0,
            },
            {
                "id": "talk",
                "category": "gender",
                "template": "The {group} gave a talk.",
                "groups": ["man", "woman"],
                "continuation": " It was clear.",
            },
        ],
    )
    report = tmp_path / "bias.md"
    done = cli("eval", "bias", "--model", "gemma3-270m", "--probes", str(probes),
               "--max-gap", "1.0", "--report", str(report), "--json")  # fmt: skip
    [run] = json.loads(done.stdout)
    assert run["kind"] == "bias" and run["metric"] == "bias:gender" and run["status"] == "done"
    details = run["details"]
    assert details["measure"] == "p_positive" and 0.0 <= run["score"] <= 1.0
    assert set(details["group_means"]) == {"man", "woman"}
    assert details["worst_pairs"][0]["probe"] == "hire" and details["passed"] is True
    assert details["likelihood_gap_mean"] >= 0.0 and details["probes"] == 2
    markdown = report.read_text()
    assert "| gender | p_positive |" in markdown and "## gender: worst pairs" in markdown
    assert "`hire`:" in markdown and "| pass |" in markdown


def test_pilot_report_renders_in_chromium(cli: CLI, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    cli("alias", "set", "candidate-b", "gemma3-270m@1")
    data = write_jsonl(
        tmp_path / "pilot.jsonl",
        [
            {"input": "The capital of France is", "expected": "Paris"},
            {"input": "One, two, three,", "expected": "four"},
        ],
    )
    out = tmp_path / "report"
    done = cli("pilot", "run", "--models", "gemma3-270m,candidate-b", "--data", str(data),
               "--metric", "contains", "--max-tokens", "4", "--out", str(out),
               "--price-per-hour", "2.5", "--json")  # fmt: skip
    report = json.loads(done.stdout)
    assert [e["model"] for e in report["entries"]] == ["gemma3-270m@1", "gemma3-270m@1"]
    assert all(e["cost_per_1k"] > 0 and e["latency_p95_s"] > 0 for e in report["entries"])
    markdown = (out / "report.md").read_text()
    assert "| gemma3-270m@1 | contains | 2 |" in markdown and "$2.50 per machine-hour" in markdown
    html = (out / "report.html").read_text()
    assert "://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")

    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto((out / "report.html").as_uri())
        charts = page.locator("svg.chart")
        assert charts.count() == 5
        ids = [charts.nth(i).get_attribute("id") for i in range(5)]
        assert ids == [
            "chart-quality",
            "chart-latency-p50",
            "chart-latency-p95",
            "chart-tokens",
            "chart-cost",
        ]
        box = page.locator("#chart-latency-p50").bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50
        assert page.locator("#chart-latency-p50 rect.bar").count() == 2
        assert page.locator("table tbody tr").count() == 2
        browser.close()
    assert all(url.startswith("file://") for url in requests)  # self-contained

    run_ids = [e["run_id"] for e in report["entries"]]
    compared = cli("eval", "compare", *run_ids, "--out", str(tmp_path / "cmp")).stderr
    assert "report.html" in compared and (tmp_path / "cmp" / "report.md").is_file()
