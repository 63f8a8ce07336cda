"""Output for people (rich tables on stdout, messages on stderr) and for scripts (``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

ProgressCallback = Callable[[int], None]


def stdout() -> Console:
    return Console(soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    whole: Sequence[int] = (0,),
    drop: Sequence[int] = (),
) -> None:
    """A table that wraps cells instead of cutting them short when the terminal is narrow.

    The columns at the indexes in ``whole`` (by default the first, which names the row) are
    kept on one line; the others wrap. When the table is wider than the terminal, the columns
    in ``drop`` are left out, in that order, until it fits (a note on stderr says which).
    """
    text = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [
        max([len(column), *(len(row[i]) for row in text)]) for i, column in enumerate(columns)
    ]
    console = stdout()
    shown = list(range(len(columns)))
    dropped = []
    for index in drop:
        if sum(widths[i] + 3 for i in shown) + 1 <= console.width:
            break
        shown.remove(index)
        dropped.append(columns[index])
    table = Table(title=title, show_lines=False, header_style="bold")
    for index in shown:
        if index in whole:
            table.add_column(columns[index], no_wrap=True, min_width=widths[index])
        else:
            table.add_column(columns[index], overflow="fold")
    for row in text:
        table.add_row(*(row[i] for i in shown))
    console.print(table)
    if dropped:
        stderr().print(
            f"({', '.join(dropped)} left out to fit {console.width} columns; --json has all)"
        )


def print_fields(fields: Sequence[tuple[str, Any]]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in fields:
        table.add_row(key, "" if value is None else str(value))
    stdout().print(table)


def human_bytes(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def human_count(count: int | None) -> str:
    if not count:
        return ""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


@contextmanager
def byte_progress(enabled: bool = True) -> Iterator[Callable[[str, int], ProgressCallback]]:
    """A factory of per-file progress callbacks drawing rich bars on stderr (when a terminal)."""
    console = stderr()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )

    def factory(label: str, total: int) -> ProgressCallback:
        task = progress.add_task(f"copying {label}", total=total)
        return lambda advance: progress.advance(task, advance)

    with progress:
        yield factory
