"""The console's SVG charts: well-formed, described for screen readers, with a data table."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from modelyard.web.charts import (
    Chart,
    Series,
    bar_svg,
    data_table,
    describe,
    figure,
    line_svg,
    nice_top,
)

SVG = "{http://www.w3.org/2000/svg}"


def _chart(**changes: object) -> Chart:
    base: dict[str, object] = {
        "chart_id": "tokens",
        "title": "Tokens per day <by team> & co",
        "labels": ("2025-01-01", "2025-01-02", "2025-01-03"),
        "series": (
            Series("research & dev", (10.0, 250.0, None)),
            Series("<ops>", (0.0, 5.0, 7.0)),
        ),
        "x_name": "Day",
        "unit": " tokens",
    }
    base.update(changes)
    return Chart(**base)  # type: ignore[arg-type]


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


@pytest.mark.parametrize("render", [line_svg, bar_svg])
def test_chart_is_well_formed_and_labelled(render: object) -> None:
    chart = _chart()
    root = _parse(str(render(chart)))  # type: ignore[operator]
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert title.text == "Tokens per day <by team> & co"
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert "research & dev: highest 250 tokens at 2025-01-02" in (desc.text or "")
    assert not any(el.get("style") for el in root.iter()), "inline styles break the CSP"
    assert not list(root.iter(f"{SVG}script"))


def test_line_chart_draws_a_line_and_a_marker_per_value() -> None:
    root = _parse(line_svg(_chart()))
    lines = list(root.iter(f"{SVG}polyline"))
    markers = list(root.iter(f"{SVG}circle"))
    assert len(lines) == 2
    assert len(markers) == 5  # one value is missing
    tips = [m.find(f"{SVG}title") for m in markers]
    assert any(t is not None and t.text == "<ops>, 2025-01-03: 7 tokens" for t in tips)


def test_bar_chart_draws_intervals() -> None:
    chart = Chart(
        "quality",
        "Quality",
        ("a@1", "b@1"),
        (Series("score", (0.5, 0.75)),),
        digits=3,
        intervals=((0.4, 0.6), (None, None)),
    )
    root = _parse(bar_svg(chart))
    assert len(list(root.iter(f"{SVG}rect"))) == 2
    assert len([p for p in root.iter(f"{SVG}path") if p.get("class") == "ci"]) == 1


def test_single_point_and_empty_charts_render() -> None:
    one = _parse(line_svg(_chart(labels=("2025-01-01",), series=(Series("x", (3.0,)),))))
    assert len(list(one.iter(f"{SVG}circle"))) == 1
    empty = _chart(labels=(), series=())
    root = _parse(line_svg(empty))
    assert "No data in this period." in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    _parse(bar_svg(empty))


def test_data_table_holds_every_value() -> None:
    table = ET.fromstring(str(data_table(_chart())))
    assert table.tag == "table"
    headers = [th.text for th in table.iter("th")]
    assert headers[:3] == ["Day", "research & dev", "<ops>"]
    rows = table.find("tbody")
    assert rows is not None
    cells = [[c.text for c in row] for row in rows]
    assert cells[0] == ["2025-01-01", "10 tokens", "0 tokens"]
    assert cells[2] == ["2025-01-03", "n/a", "7 tokens"]


def test_figure_holds_the_chart_and_its_table() -> None:
    html = str(figure(_chart(), "line"))
    root = ET.fromstring(html)
    assert root.tag == "figure"
    assert root.find(f"{SVG}svg") is not None
    assert root.find("details/table") is not None
    assert "<by team>" not in html  # escaped everywhere


def test_mismatched_series_are_refused() -> None:
    with pytest.raises(ValueError):
        Chart("x", "x", ("a", "b"), (Series("s", (1.0,)),))


def test_nice_top_rounds_up() -> None:
    assert nice_top(0) == 1.0
    assert nice_top(7) == 10.0
    assert nice_top(180) == 200.0
    assert nice_top(2300) == 2500.0
    assert describe(_chart(description="Served tokens.")).startswith(
        "Served tokens. 3 days (2025-01-01 to 2025-01-03)."
    )
