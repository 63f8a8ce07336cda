"""``modelyard audit``: verify the chain, read and export records, purge, erase a subject."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from modelyard.atomic_write import open_text
from modelyard.audit.erasure import erase_subject
from modelyard.audit.log import AuditLog
from modelyard.audit.query import Filter, export_lines, iter_records, show_record
from modelyard.audit.retention import purge_older_than
from modelyard.audit.text_digest import match_record
from modelyard.audit.usage import usage_by
from modelyard.audit.verify import verify
from modelyard.cli.audit_witness import app as witness_app
from modelyard.cli.output import print_fields, print_json, print_table, stderr
from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput, UserError

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(witness_app, name="witness")

_AGO = re.compile(r"^(\d+)([mhdw])$")


def parse_when(text: str | None) -> datetime | None:
    """``7d``/``12h``/``30m``/``2w`` ago, or an ISO date/time (UTC when no zone is given)."""
    if text is None:
        return None
    match = _AGO.match(text.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"cannot read time {text!r}: use 7d, 12h or an ISO date") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json"),
    pubkey: Path | None = typer.Option(
        None,
        "--pubkey",
        help="The witness's public key, pinned outside the home (default: MODELYARD_AUDIT_PUBKEY).",
    ),
) -> None:
    """Re-walk the hash chain against the witness's signed checkpoints; exit 1 on a problem.

    Without a pinned public key the result is no evidence against someone who can write
    the database and MODELYARD_HOME; the output says so.
    """
    runtime: Runtime = ctx.obj
    report = verify(runtime.db, runtime.settings, pubkey=pubkey)
    if as_json:
        print_json(report.to_json())
    else:
        if report.ok:
            span = f"{report.first_seq}..{report.last_seq}" if report.records else "empty"
            stderr().print(
                f"audit log OK: {report.records} records ({span}), {report.checkpoints} checkpoints"
            )
            for note in report.notes:
                stderr().print(f"  {note}")
        stderr().print(f"evidence: {report.evidence} — {report.evidence_note}", markup=False)
    if not report.ok:
        raise UserError(f"audit log verification failed: {report.problem}")


@app.command("list")
def list_command(
    ctx: typer.Context,
    since: str | None = typer.Option(None, help="7d, 12h, or an ISO date/time."),
    until: str | None = typer.Option(None),
    kind: str | None = typer.Option(None, help="request, request.accepted, event or purge."),
    key: str | None = typer.Option(None, help="Only this key's records."),
    team: str | None = typer.Option(None),
    limit: int = typer.Option(50, min=1),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The newest records (text is shown by `audit show`)."""
    runtime: Runtime = ctx.obj
    where = Filter(parse_when(since), parse_when(until), kind, key, team, limit, newest_first=True)
    records = list(iter_records(runtime.db, where))
    if as_json:
        print_json(records)
        return
    print_table(
        None,
        ["SEQ", "TIME", "KIND", "KEY", "TEAM", "ROUTE", "TARGET", "STATUS", "TOKENS", "MS"],
        [
            [
                r["seq"],
                r["at"][:19].replace("T", " "),
                r["kind"] if r["kind"] != "event" else r["details"].get("event", "event"),
                r["actor"],
                r["team"],
                r["route"],
                r["target"],
                r["status"],
                (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0) or None,
                r["latency_ms"],
            ]
            for r in records
        ],
    )


@app.command("show")
def show_command(
    ctx: typer.Context,
    seq: int = typer.Argument(..., help="Sequence number."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One record in full, its texts decrypted (``[erased]`` after erasure)."""
    runtime: Runtime = ctx.obj
    record = show_record(runtime.db, seq)
    if as_json:
        print_json(record)
    else:
        print_fields(list(record.items()))


@app.command("export")
def export_command(
    ctx: typer.Context,
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    since: str | None = typer.Option(None, help="7d, 12h, or an ISO date/time."),
    until: str | None = typer.Option(None),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
) -> None:
    """Every record in the period, oldest first, for auditors."""
    runtime: Runtime = ctx.obj
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(f"unknown export format {fmt!r} (use jsonl or csv)")
    lines = export_lines(
        iter_records(runtime.db, Filter(parse_when(since), parse_when(until))), fmt
    )
    if output is None:
        for line in lines:
            typer.echo(line, nl=False)
        return
    count = 0
    with open_text(output, newline="") as handle:
        for line in lines:
            handle.write(line)
            count += 1
    stderr().print(f"wrote {count - (fmt == 'csv')} records to {output}")


@app.command("usage")
def usage_command(
    ctx: typer.Context,
    by: str = typer.Option("team", help="team, key or model."),
    since: str | None = typer.Option(None),
    until: str | None = typer.Option(None),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Requests and tokens per team, key or model (what chargeback reads)."""
    runtime: Runtime = ctx.obj
    if by not in ("team", "key", "model"):
        raise InvalidInput(f"cannot group usage by {by!r} (use team, key or model)")
    rows = usage_by(runtime.db, parse_when(since), parse_when(until), by=by)  # type: ignore[arg-type]
    if as_json:
        print_json([u.to_json() for u in rows])
        return
    hits = any(u.cache_hits for u in rows)
    print_table(
        None,
        [by.upper(), "REQUESTS", "PROMPT", "COMPLETION", "TOTAL"]
        + (["CACHE HITS", "CHARGED"] if hits else []),
        [
            [u.group, u.requests, u.prompt_tokens, u.completion_tokens, u.total_tokens]
            + ([u.cache_hits, u.charged_tokens] if hits else [])
            for u in rows
        ],
    )


@app.command("purge")
def purge_command(
    ctx: typer.Context,
    days: int | None = typer.Option(None, help="Default: MODELYARD_AUDIT_RETENTION_DAYS."),
) -> None:
    """Remove records older than the retention period; the chain stays verifiable."""
    runtime: Runtime = ctx.obj
    days = days or runtime.settings.audit_retention_days
    if days is None:
        raise InvalidInput("no retention period: pass --days or set MODELYARD_AUDIT_RETENTION_DAYS")
    log = AuditLog(runtime.db, runtime.settings)
    try:
        purge = purge_older_than(log, days, actor=runtime.acting("audit.erase"))
    finally:
        log.close(checkpoint=False)
    if purge is None:
        stderr().print(f"nothing older than {days} days")
    else:
        stderr().print(f"purged records older than {days} days (purge record {purge.seq})")


@app.command("erase")
def erase_command(
    ctx: typer.Context,
    subject: str = typer.Argument(
        ..., help="The data subject: a request's `user`, or a key's name (the person's key)."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    reason: str | None = typer.Option(
        None, "--reason", help="Why (the request or ticket); recorded with the erasure."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Destroy a data subject's key: their texts and every record's mention of their name
    become unreadable for good; the chain still verifies. Lists what it covered."""
    runtime: Runtime = ctx.obj
    if not yes and not sys.stdin.isatty():
        raise UserError(
            f"erasing {subject!r} cannot be undone and there is no terminal to confirm it: "
            "pass --yes to confirm"
        )
    if not yes and not typer.confirm("This cannot be undone. Erase?", default=False):
        stderr().print("not erased: confirm with 'y', or pass --yes")
        raise typer.Exit(1)
    log = AuditLog(runtime.db, runtime.settings)
    try:
        erasure = erase_subject(log, subject, actor=runtime.acting("audit.erase"), reason=reason)
    finally:
        log.close(checkpoint=False)
    if as_json:
        print_json(erasure.to_json())
        return
    print_table(
        None,
        ["KIND", "RECORDS", "SEQS"],
        [[kind, len(seqs), _seq_ranges(seqs)] for kind, seqs in sorted(erasure.records.items())],
    )
    stderr().print(
        f"erased subject {erasure.subject_id}: {erasure.count} records unreadable "
        f"(event {erasure.event_seq})"
    )
    if erasure.batch.lines:
        stderr().print(
            f"batch data: {erasure.batch.lines} batch requests and their answers removed; "
            f"files written again without them: {', '.join(erasure.batch.files) or 'none'}"
        )
    if erasure.in_clear:
        stderr().print(
            f"warning: {len(erasure.in_clear)} records still name the subject in clear "
            f"(written before identifiers were sealed, or in free text): "
            f"{_seq_ranges(erasure.in_clear)}"
        )


def _seq_ranges(seqs: list[int]) -> str:
    """``1-3,7,9-10`` for [1, 2, 3, 7, 9, 10]."""
    runs: list[list[int]] = []
    for seq in sorted(seqs):
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@app.command("match")
def match_command(
    ctx: typer.Context,
    seq: int = typer.Argument(..., help="Sequence number of a hash-mode record."),
    text: str = typer.Option(..., "--text", help="The candidate prompt or answer."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check a candidate text against a hash-mode record (needs the home's text.secret).
    Exit 0 when it is the record's prompt or answer, 1 when it is neither."""
    runtime: Runtime = ctx.obj
    match = match_record(runtime.db, runtime.settings, seq, text)
    if as_json:
        print_json(match.to_json())
    else:
        print_fields(list(match.to_json().items()))
    if not match.matched:
        raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint_command(ctx: typer.Context) -> None:
    """Have the witness sign the current head now (the gateway also does so every N records,
    every N seconds and on shutdown)."""
    runtime: Runtime = ctx.obj
    log = AuditLog(runtime.db, runtime.settings)
    try:
        head = log.checkpoint()
    finally:
        log.close(checkpoint=False)
    stderr().print("empty log: nothing to sign" if head is None else f"signed seq {head.seq}")
