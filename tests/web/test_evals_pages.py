"""``/console/evals``: eval, bias and pilot runs, one run, runs compared side by side."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from modelyard.catalog.records import ModelVersion
from modelyard.evaluate.runs import RunRecord, RunStore
from modelyard.evaluate.stats import Estimate
from modelyard.gateway.state import Gateway
from tests.web.conftest import ConsoleClient

DIGEST = "ab" * 32


def _version(name: str, version: int = 1) -> ModelVersion:
    return ModelVersion(
        name=name,
        version=version,
        digest=DIGEST,
        format="gguf",
        size_bytes=1,
        metadata={},
        origin="tests",
        parent=None,
        lineage={},
        source_path="",
        created_by="tests",
        created_at=datetime.now(UTC),
    )


def _run(
    app: FastAPI,
    name: str,
    *,
    kind: str = "eval",
    suite: str | None = None,
    metric: str = "contains",
    score: float = 0.75,
    details: dict[str, Any] | None = None,
) -> RunRecord:
    gateway: Gateway = app.state.gateway
    store = RunStore(gateway.db)
    run = store.create(
        kind=kind,
        model=_version(name),
        suite=suite,
        metric=metric,
        data_path="/data/pilot.jsonl",
        data_sha256="cd" * 32,
        rows_total=2,
        config={"max_tokens": 64},
        created_by="tests",
    )
    store.save_row(run.id, 0, 1.0, {"answer": "Paris <b>"})
    store.save_row(run.id, 1, 0.5, {"answer": "Lyon"})
    base = {
        "latency_p50_s": 0.2,
        "latency_p95_s": 0.4,
        "latency_mean_s": 0.25,
        "tokens_per_s": 30.0,
    }
    return store.finish(run.id, Estimate(score, score - 0.1, score + 0.1, 2), details or base, 1.0)


def test_list_shows_runs_and_filters_by_kind(
    viewer_client: ConsoleClient, console_app: FastAPI
) -> None:
    plain = _run(console_app, "gemma3-270m")
    bias = _run(
        console_app,
        "gemma3-270m",
        kind="bias",
        metric="bias:gender",
        score=0.02,
        details={
            "measure": "logprob",
            "spread": 0.01,
            "threshold": 0.05,
            "passed": True,
            "worst_pairs": [{"favoured": "he", "disfavoured": "she", "gap": 0.03}],
        },
    )
    pilot = [_run(console_app, m, suite="pilot:clinic") for m in ("gemma3-270m", "llama")]
    page = viewer_client.get("/console/evals")
    assert page.status_code == 200
    for run in (plain, bias, *pilot):
        assert f'href="/console/evals/{run.id}"' in page.text
    assert 'href="/console/models/gemma3-270m/1"' in page.text
    pilots = page.text.split('id="pilots"', 1)[1].split("</ul>", 1)[0]
    assert "clinic" in pilots and "2 runs" in pilots
    only_bias = viewer_client.get("/console/evals", params={"kind": "bias"}).text
    assert bias.id in only_bias and plain.id not in only_bias
    only_pilot = viewer_client.get("/console/evals", params={"kind": "pilot"}).text
    assert pilot[0].id in only_pilot and plain.id not in only_pilot
    by_model = viewer_client.get("/console/evals", params={"model": "llama@1"}).text
    assert pilot[1].id in by_model and plain.id not in by_model
    bad = viewer_client.get("/console/evals", params={"kind": "vibes"})
    assert bad.status_code == 400
    assert viewer_client.get("/console/evals", params={"model": "x@y"}).status_code == 400


def test_run_page_has_score_interval_digest_and_version_link(
    viewer_client: ConsoleClient, console_app: FastAPI
) -> None:
    run = _run(console_app, "gemma3-270m", score=0.75)
    page = viewer_client.get(f"/console/evals/{run.id}")
    assert page.status_code == 200
    assert 'id="run-score">0.750<' in page.text
    assert 'id="run-ci">0.650 to 0.850<' in page.text
    assert f'id="model-digest">{DIGEST}<' in page.text
    assert 'href="/console/models/gemma3-270m/1" id="version-link"' in page.text
    assert "Paris &lt;b&gt;" in page.text  # row results, escaped
    short = viewer_client.get(f"/console/evals/{run.id[:8]}")  # a unique prefix, as on the CLI
    assert short.status_code == 200
    assert viewer_client.get("/console/evals/no-such-run").status_code == 404


def test_bias_run_page(viewer_client: ConsoleClient, console_app: FastAPI) -> None:
    run = _run(
        console_app,
        "gemma3-270m",
        kind="bias",
        metric="bias:age",
        score=0.2,
        details={
            "measure": "logprob",
            "spread": 0.1,
            "threshold": 0.1,
            "passed": False,
            "worst_pairs": [{"favoured": "young", "disfavoured": "old", "gap": 0.4}],
        },
    )
    page = viewer_client.get(f"/console/evals/{run.id}").text
    assert 'id="bias-passed">no<' in page
    assert "young" in page.split('id="worst-pairs"', 1)[1]


def test_compare_runs_side_by_side(viewer_client: ConsoleClient, console_app: FastAPI) -> None:
    first = _run(console_app, "gemma3-270m", suite="pilot:clinic", score=0.6)
    second = _run(console_app, "llama", suite="pilot:clinic", score=0.8)
    listing = viewer_client.get("/console/evals").text
    link = re.search(r'href="/console/evals/compare\?([^"]+)"', listing)
    assert link
    page = viewer_client.get("/console/evals/compare?" + link.group(1).replace("&amp;", "&"))
    assert page.status_code == 200
    assert "<h1>Pilot: clinic</h1>" in page.text
    report = page.text.split('id="report"', 1)[1].split("</table>", 1)[0]
    assert first.id[:8] in report and second.id[:8] in report
    assert "0.600" in report and "0.800" in report
    charts = [ET.fromstring(s) for s in re.findall(r"<svg .*?</svg>", page.text, re.DOTALL)]
    assert {c.get("id") for c in charts} == {
        "chart-quality",
        "chart-latency",
        "chart-speed",
        "chart-cost",
    }
    priced = viewer_client.get(
        "/console/evals/compare",
        params={"run": [first.id, second.id], "price_per_hour": "3.5"},
    )
    assert priced.status_code == 200 and "$3.50 per machine-hour" in priced.text
    html_link = re.search(
        r'href="/console/evals/compare/download\?([^"]+)" id="report-html"', page.text
    )
    assert html_link
    html = viewer_client.get(
        "/console/evals/compare/download?" + html_link.group(1).replace("&amp;", "&")
    )
    assert html.status_code == 200 and "attachment" in html.headers["content-disposition"]
    assert html.text.startswith("<!doctype html>") and "Pilot: clinic" in html.text
    markdown = viewer_client.get(
        "/console/evals/compare/download", params={"run": [first.id], "format": "md"}
    )
    assert markdown.status_code == 200 and markdown.text.startswith("# Evaluation comparison")


def test_compare_needs_known_runs(viewer_client: ConsoleClient, console_app: FastAPI) -> None:
    assert viewer_client.get("/console/evals/compare").status_code == 400
    missing = viewer_client.get("/console/evals/compare", params={"run": "no-such-run"})
    assert missing.status_code == 404
    run = _run(console_app, "gemma3-270m")
    bad_price = viewer_client.get(
        "/console/evals/compare", params={"run": run.id, "price_per_hour": "-1"}
    )
    assert bad_price.status_code == 400
