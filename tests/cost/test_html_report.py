"""The chargeback HTML page, rendered in headless Chromium (Debian's /usr/bin/chromium)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelyard.cost.chargeback import InMemoryUsage, Served, chargeback
from modelyard.cost.html_report import render_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _report() -> str:
    source = InMemoryUsage(
        (
            Served("alice", "legal", T0 + timedelta(hours=1), 40_000, 10_000),
            Served("bob", "<sales & co>", T0 + timedelta(hours=2), 20_000, 5_000),
        )
    )
    report = chargeback(
        source.usage(T0, T0 + timedelta(days=1), "team"),
        by="team",
        since=T0,
        until=T0 + timedelta(days=1),
        hourly_cost=1.5,
        capacity_tokens_per_hour=50_000,
    )
    return render_html(report)


def test_html_escapes_and_holds_table_and_charts() -> None:
    html = _report()
    assert "&lt;sales &amp; co&gt;" in html and "<sales & co>" not in html
    assert html.count("<svg") == 2
    assert "(idle capacity)" in html


@pytest.mark.slow
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "report.html"
    page_file.write_text(_report(), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            assert page.title() == "modelyard chargeback by team"
            rows = page.locator("#chargeback tbody tr")
            assert rows.count() == 3
            assert rows.nth(2).locator("td").first.inner_text() == "(idle capacity)"
            assert page.locator("#chargeback").inner_text().count("<sales & co>") == 1
            bars = page.locator("#cost-chart rect.bar")
            assert bars.count() == 3
            widths = [bars.nth(i).bounding_box()["width"] for i in range(3)]  # type: ignore[index]
            assert all(w >= 1 for w in widths)
            # the idle bar is the widest: 33.75 idle against 1.50 and 0.75 used
            assert widths[2] == max(widths)
            assert page.locator("#token-chart rect.bar").count() == 2
            page.screenshot(path=str(tmp_path / "report.png"))
            assert (tmp_path / "report.png").stat().st_size > 1000
        finally:
            browser.close()
