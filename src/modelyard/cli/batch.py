"""``modelyard batch``: submit JSONL files to a gateway's Batch API, follow them, fetch results.

A client command: it talks HTTP to a running gateway (``MODELYARD_URL``, ``--url``) as a key
holder (``MODELYARD_API_KEY``, or ``--key-env VAR``) and opens no database. The gateway's
errors come back as modelyard errors, so exit codes and messages are those of local commands.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from modelyard import atomic_write
from modelyard.batch.client import BatchClient
from modelyard.cli.output import print_fields, print_json, print_table, stderr, stdout
from modelyard.cli.runtime import Runtime
from modelyard.errors import Conflict, InvalidInput, NotFound, Unavailable

HELP = "Submit JSONL files to the gateway's Batch API, follow them and fetch their results."

app = typer.Typer(help=HELP, no_args_is_help=True)

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
"""Statuses a batch never leaves."""

SHOWN_ERRORS = 5
"""Batch errors ``status`` and ``submit --wait`` print; ``--json`` has them all."""

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
URL_OPTION = typer.Option(
    None, "--url", help="The gateway's base URL (default: MODELYARD_URL, http://127.0.0.1:8080)."
)
KEY_ENV_OPTION = typer.Option(
    None,
    "--key-env",
    metavar="VAR",
    help="Read the API key from this environment variable instead of MODELYARD_API_KEY.",
)
ID_ARGUMENT = typer.Argument(..., help="The batch id (batch_…).")


@contextmanager
def _client(ctx: typer.Context, url: str | None, key_env: str | None) -> Iterator[BatchClient]:
    """A client for the gateway at ``url`` (else ``MODELYARD_URL``), closed after the command."""
    runtime: Runtime = ctx.obj
    key = None
    if key_env is not None:
        value = os.environ.get(key_env)
        if not value:
            raise InvalidInput(f"the environment variable {key_env} is not set or empty")
        key = SecretStr(value)
    with BatchClient(runtime.settings, url=url, api_key=key) as client:
        yield client


# -- formatting ---------------------------------------------------------------------------------


def _time(value: Any) -> str:
    """A Unix time as ISO 8601 in UTC; empty when unset."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _counts(batch: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(completed, failed, total)`` lines, zeros while the gateway has not counted."""
    counts = batch.get("request_counts") or {}
    return (
        int(counts.get("completed") or 0),
        int(counts.get("failed") or 0),
        int(counts.get("total") or 0),
    )


def _counts_text(batch: Mapping[str, Any]) -> str:
    completed, failed, total = _counts(batch)
    return f"{completed} ok, {failed} failed, {total} total"


def _errors(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    errors = batch.get("errors") or {}
    data = errors.get("data") if isinstance(errors, dict) else None
    return [e for e in data or [] if isinstance(e, dict)]


def _error_text(error: Mapping[str, Any]) -> str:
    where = f"line {error['line']}: " if error.get("line") is not None else ""
    code = f" ({error['code']})" if error.get("code") else ""
    return f"{where}{error.get('message') or 'error'}{code}"


def _errors_text(batch: Mapping[str, Any]) -> str:
    errors = _errors(batch)
    shown = "; ".join(_error_text(e) for e in errors[:SHOWN_ERRORS])
    more = len(errors) - SHOWN_ERRORS
    return shown + (f"; and {more} more (--json has all)" if more > 0 else "")


def _finished_fields(batch: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The times of the terminal states the batch reached (most have one, or none yet)."""
    fields: list[tuple[str, Any]] = []
    for state in ("completed", "failed", "expired", "cancelled"):
        if batch.get(f"{state}_at") is not None:
            fields.append((state, _time(batch[f"{state}_at"])))
    return fields


def _show(batch: Mapping[str, Any], as_json: bool) -> None:
    """One batch: its JSON, or a fields table."""
    if as_json:
        print_json(batch)
        return
    metadata = batch.get("metadata") or {}
    print_fields(
        [
            ("id", batch.get("id")),
            ("status", batch.get("status")),
            ("endpoint", batch.get("endpoint")),
            ("requests", _counts_text(batch)),
            ("created", _time(batch.get("created_at"))),
            *_finished_fields(batch),
            ("expires", _time(batch.get("expires_at"))),
            ("input file", batch.get("input_file_id")),
            ("output file", batch.get("output_file_id")),
            ("error file", batch.get("error_file_id")),
            ("metadata", ", ".join(f"{k}={v}" for k, v in sorted(metadata.items()))),
            ("errors", _errors_text(batch)),
        ]
    )


def _id_of(obj: Mapping[str, Any], what: str) -> str:
    """The ``id`` of an object the gateway answered; a clear fault when it has none."""
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise Unavailable(f"the gateway answered the {what} with no id")
    return value


def _parse_metadata(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as a mapping (the value may hold ``=``)."""
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--metadata takes KEY=VALUE, not {pair!r}", param="metadata")
        metadata[key.strip()] = value
    return metadata


# -- waiting ------------------------------------------------------------------------------------


def _wait(client: BatchClient, batch: dict[str, Any], poll_s: float) -> dict[str, Any]:
    """Poll the batch until a terminal status, with a progress bar on stderr (a terminal)."""
    batch_id = _id_of(batch, "batch")
    console = stderr()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(str(batch.get("status")), total=None)
        while batch.get("status") not in TERMINAL:
            completed, failed, total = _counts(batch)
            progress.update(
                task,
                description=f"{batch_id} {batch.get('status')}",
                completed=completed + failed,
                total=total or None,
            )
            time.sleep(poll_s)
            batch = client.retrieve(batch_id)
    return batch


def _verdict(batch: Mapping[str, Any]) -> str | None:
    """Why a finished batch is not a success; None when it completed with no failed line."""
    status = batch.get("status")
    completed, failed, total = _counts(batch)
    errors = _errors_text(batch)
    if status == "completed" and not failed:
        return None
    if status == "completed":
        why = f"{failed} of {total} lines failed"
    elif status == "failed":
        why = "it failed" + (f": {errors}" if errors else "")
    else:
        why = f"it was {status} after {completed + failed} of {total} lines ({failed} failed)"
    hint = ""
    if batch.get("error_file_id"):
        hint = f"; the failed lines: modelyard batch results {batch.get('id')} --errors"
    return f"batch {batch.get('id')}: {why}{hint}"


# -- commands -----------------------------------------------------------------------------------


@app.command("submit")
def submit_command(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        readable=True,
        help="A JSONL file: one {custom_id, method, url, body} request a line.",
    ),
    endpoint: str = typer.Option(
        "/v1/chat/completions",
        help="The route every line calls: /v1/chat/completions, /v1/completions, /v1/embeddings.",
    ),
    metadata: list[str] = typer.Option(
        [], "--metadata", metavar="KEY=VALUE", help="A label kept with the batch; repeatable."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Follow the batch to its end; exit 1 unless every line succeeded."
    ),
    poll: float = typer.Option(2.0, min=0.1, help="Seconds between looks at the batch (--wait)."),
    as_json: bool = JSON_OPTION,
    url: str | None = URL_OPTION,
    key_env: str | None = KEY_ENV_OPTION,
) -> None:
    """Upload FILE and start a batch over it; print the batch's id and status."""
    labels = _parse_metadata(metadata)
    with _client(ctx, url, key_env) as client:
        file_id = _id_of(client.upload(file), "upload")
        if not as_json:
            stderr().print(f"uploaded {file.name} as {file_id}", highlight=False)
        batch = client.create(file_id, endpoint, labels)
        if wait:
            try:
                batch = _wait(client, batch, poll)
            except KeyboardInterrupt:
                stderr().print(
                    f"stopped waiting; batch {batch.get('id')} goes on: "
                    f"modelyard batch status {batch.get('id')}",
                    highlight=False,
                )
                raise typer.Exit(130) from None
    _show(batch, as_json)
    if wait and (why := _verdict(batch)) is not None:
        stderr().print(Text.assemble(("error: ", "red"), why))
        raise typer.Exit(1)


@app.command("status")
def status_command(
    ctx: typer.Context,
    batch_id: str = ID_ARGUMENT,
    as_json: bool = JSON_OPTION,
    url: str | None = URL_OPTION,
    key_env: str | None = KEY_ENV_OPTION,
) -> None:
    """Show a batch: status, line counts, times (UTC), its files and errors."""
    with _client(ctx, url, key_env) as client:
        batch = client.retrieve(batch_id)
    _show(batch, as_json)


def _result_file(batch: Mapping[str, Any], errors: bool) -> str:
    """The id of the file ``results`` fetches, or a clear refusal when there is none."""
    file_id = batch.get("error_file_id" if errors else "output_file_id")
    if file_id:
        return str(file_id)
    batch_id, status = batch.get("id"), batch.get("status")
    if status not in TERMINAL:
        raise Conflict(
            f"batch {batch_id} is {status}: no results yet "
            f"(modelyard batch status {batch_id}, or submit with --wait)",
            code="batch_not_finished",
        )
    if errors:
        raise NotFound(f"batch {batch_id} is {status} with no failed line: no error file")
    raise NotFound(f"batch {batch_id} is {status} with no output file" + _reason(batch))


def _reason(batch: Mapping[str, Any]) -> str:
    errors = _errors_text(batch)
    return f": {errors}" if errors else ""


def _line_count(data: bytes) -> int:
    return sum(1 for line in data.splitlines() if line.strip())


def _parsed_lines(data: bytes, file_id: str) -> list[Any]:
    """A JSONL file's lines as values (``results --json`` without ``--output``)."""
    try:
        return [json.loads(line) for line in data.splitlines() if line.strip()]
    except ValueError as error:
        raise Unavailable(f"the gateway's file {file_id} is not JSONL: {error}") from error


@app.command("results")
def results_command(
    ctx: typer.Context,
    batch_id: str = ID_ARGUMENT,
    output: Path | None = typer.Option(
        None, "--output", "-o", dir_okay=False, help="Write the JSONL here (default: stdout)."
    ),
    errors: bool = typer.Option(
        False, "--errors", help="The error file (only the failed lines) instead of the output."
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="With --output: a JSON summary; without: the lines as one JSON array.",
    ),
    url: str | None = URL_OPTION,
    key_env: str | None = KEY_ENV_OPTION,
) -> None:
    """Download a finished batch's output (or, with --errors, its failed lines) as JSONL."""
    with _client(ctx, url, key_env) as client:
        batch = client.retrieve(batch_id)
        file_id = _result_file(batch, errors)
        data = client.content(file_id)
    if output is None:
        if as_json:
            print_json(_parsed_lines(data, file_id))
        else:
            typer.echo(data, nl=False)
        return
    atomic_write.write_bytes(output, data)
    summary = {
        "batch_id": batch.get("id"),
        "file_id": file_id,
        "path": str(output),
        "bytes": len(data),
        "lines": _line_count(data),
    }
    if as_json:
        print_json(summary)
    else:
        stderr().print(
            f"wrote {summary['lines']} lines ({len(data)} bytes) of {file_id} to {output}",
            highlight=False,
        )


@app.command("list")
def list_command(
    ctx: typer.Context,
    limit: int = typer.Option(20, min=1, max=100, help="How many batches, newest first."),
    as_json: bool = JSON_OPTION,
    url: str | None = URL_OPTION,
    key_env: str | None = KEY_ENV_OPTION,
) -> None:
    """List this key's batches (an admin key's: all), newest first."""
    with _client(ctx, url, key_env) as client:
        page = client.list(limit)
    batches = [b for b in page.get("data") or [] if isinstance(b, dict)]
    if as_json:
        print_json(batches)
        return
    print_table(
        None,
        ["ID", "STATUS", "ENDPOINT", "REQUESTS", "CREATED"],
        [
            [
                b.get("id"),
                b.get("status"),
                b.get("endpoint"),
                _counts_text(b),
                _time(b.get("created_at")),
            ]
            for b in batches
        ],
        drop=(2, 4),
    )
    if page.get("has_more"):
        stderr().print(f"(more than {limit}: --limit shows more)")


@app.command("cancel")
def cancel_command(
    ctx: typer.Context,
    batch_id: str = ID_ARGUMENT,
    as_json: bool = JSON_OPTION,
    url: str | None = URL_OPTION,
    key_env: str | None = KEY_ENV_OPTION,
) -> None:
    """Cancel a batch: lines not yet run are not run; those done stay in its output."""
    with _client(ctx, url, key_env) as client:
        batch = client.cancel(batch_id)
    if as_json:
        print_json(batch)
        return
    stdout().print(f"{batch.get('id')} {batch.get('status')}", highlight=False, markup=False)
