"""Engines: the workers' status and the queue, the polled fragment, tokens per second."""

from __future__ import annotations

from fastapi import FastAPI

from modelyard.engines.fake import FakeEngine
from modelyard.web.state import TokenRates
from tests.web.conftest import ConsoleClient


def test_engines_page_and_fragment(console_app: FastAPI, viewer_client: ConsoleClient) -> None:
    page = viewer_client.get("/console/engines").text
    assert 'data-refresh="/console/engines/status"' in page
    assert '<a href="/console/engines" id="engines-refresh">Refresh</a>' in page  # without JS
    assert 'id="no-workers"' in page and "fake engines (tests)" in page
    assert "Queue: 0 running, 0 waiting" in page

    engines = console_app.state.gateway.workers
    engines.engines["abc"] = FakeEngine()  # a worker the fake pool reports as ready
    console_app.state.gateway.metrics.tokens_out.labels("abc").inc(10)
    fragment = viewer_client.get("/console/engines/status")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="workers"' in fragment.text and "status-ready" in fragment.text
    assert '<script src="/console/static/console.js"' in page


def test_tokens_per_second_between_two_looks() -> None:
    now = [100.0]
    rates = TokenRates(monotonic=lambda: now[0])
    assert rates.update({"m@1": 50.0}) == {"m@1": None}  # a first look has no rate yet
    now[0] = 102.0
    assert rates.update({"m@1": 90.0}) == {"m@1": 20.0}
    now[0] = 104.0
    assert rates.update({"m@1": 90.0, "m@2": 5.0}) == {"m@1": 0.0, "m@2": None}


def test_static_files(viewer_client: ConsoleClient) -> None:
    script = viewer_client.get("/console/static/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert viewer_client.get("/console/static/console.css").status_code == 200
    assert viewer_client.get("/console/static/../pages/login.py").status_code == 404
