"""Writing a pilot or comparison report: Markdown and a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

from modelyard.atomic_write import write_text
from modelyard.evaluate.html_report import to_html
from modelyard.evaluate.report import Report, to_markdown


def write_report(report: Report, out_dir: Path, stem: str = "report") -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.html`` (self-contained) into ``out_dir``."""
    markdown, html = out_dir / f"{stem}.md", out_dir / f"{stem}.html"
    write_text(markdown, to_markdown(report))
    write_text(html, to_html(report))
    return markdown, html
