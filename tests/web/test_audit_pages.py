"""``/console/audit``: browse with filters and paging, a record, verify, export, erasure."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy import update

from modelyard.audit.log import AuditEntry, AuditLog, record_event
from modelyard.audit.query import EXPORT_COLUMNS, Filter, export_lines, iter_records
from modelyard.gateway.state import Gateway
from modelyard.store.audit_tables import AuditRecordRow
from tests.web.conftest import ConsoleClient, audit_events

SEQ_LINK = re.compile(r'<a href="/console/audit/(\d+)">')


def _gateway(app: FastAPI) -> Gateway:
    gateway: Gateway = app.state.gateway
    return gateway


def _request(app: FastAPI, *, key: str, subject: str | None = None, prompt: str = "") -> int:
    """A served request's record, as the gateway writes it."""
    gateway = _gateway(app)
    log = AuditLog(gateway.db, gateway.settings)
    try:
        return log.append(
            AuditEntry(
                kind="request",
                actor=key,
                team="research",
                route="chat",
                target="gemma3-270m@1",
                status=200,
                latency_ms=120,
                prompt_tokens=11,
                completion_tokens=7,
                subject=subject,
                text_mode="full" if prompt else "none",
                prompt=prompt or None,
                response="an answer" if prompt else None,
            )
        ).seq
    finally:
        log.close(checkpoint=False)


def _event(app: FastAPI, kind: str, actor: str, target: str) -> int:
    gateway = _gateway(app)
    return record_event(gateway.db, gateway.settings, kind, actor, target, {}).seq


def _seqs(html: str) -> list[int]:
    return [int(s) for s in SEQ_LINK.findall(html.split('id="audit-records"', 1)[-1])]


def test_browse_filters_by_kind_actor_target_and_text(
    console_client: Callable[..., ConsoleClient], console_app: FastAPI
) -> None:
    auditor = console_client("auditor")
    key_event = _event(console_app, "key.create", "alice", "key:ci")
    team_event = _event(console_app, "team.create", "bob", "team:research")
    served = _request(console_app, key="ci", prompt="what is the capital of France?")
    page = auditor.get("/console/audit")
    assert page.status_code == 200
    shown = _seqs(page.text)
    assert shown[:3] == [served, team_event, key_event]  # newest first
    assert _seqs(auditor.get("/console/audit", params={"kind": "key.create"}).text) == [key_event]
    assert _seqs(auditor.get("/console/audit", params={"actor": "BOB"}).text) == [team_event]
    by_target = auditor.get("/console/audit", params={"target": "gemma3"}).text
    assert _seqs(by_target) == [served]
    by_text = auditor.get("/console/audit", params={"text": "capital of France"}).text
    assert _seqs(by_text) == [served]
    assert _seqs(auditor.get("/console/audit", params={"kind": "request"}).text) == [served]
    # the filter form shows what was asked
    assert 'value="capital of France"' in by_text


def test_bad_filters_get_the_error(admin_client: ConsoleClient) -> None:
    bad_kind = admin_client.get("/console/audit", params={"kind": "key.teleport"})
    assert bad_kind.status_code == 400 and "unknown record kind" in bad_kind.text
    bad_date = admin_client.get("/console/audit", params={"since": "yesterday"})
    assert bad_date.status_code == 400 and "cannot read" in bad_date.text
    backwards = admin_client.get(
        "/console/audit", params={"since": "2025-02-01", "until": "2025-01-01"}
    )
    assert backwards.status_code == 400


def test_paging_by_sequence_number(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    made = [_event(console_app, "alias.set", "pager", f"alias:a{i}") for i in range(7)]
    first = admin_client.get("/console/audit", params={"actor": "pager", "size": "3"})
    assert _seqs(first.text) == made[::-1][:3]
    older = re.search(r'href="/console/audit\?([^"]+)" rel="next"', first.text)
    assert older
    second = admin_client.get("/console/audit?" + older.group(1).replace("&amp;", "&"))
    assert _seqs(second.text) == made[::-1][3:6]
    third_link = re.search(r'href="/console/audit\?([^"]+)" rel="next"', second.text)
    assert third_link
    third = admin_client.get("/console/audit?" + third_link.group(1).replace("&amp;", "&"))
    assert _seqs(third.text) == made[:1]
    assert 'rel="next"' not in third.text


def test_record_detail(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    seq = _request(console_app, key="ci", subject="dana", prompt="hello there")
    page = admin_client.get(f"/console/audit/{seq}")
    assert page.status_code == 200
    assert f"Audit record {seq}: request" in page.text
    assert "hello there" in page.text and "gemma3-270m@1" in page.text
    assert 'id="record-details"' in page.text
    assert admin_client.get("/console/audit/999999").status_code == 404


def test_verify_shows_result_checkpoint_and_witness(
    admin_client: ConsoleClient, console_app: FastAPI
) -> None:
    gateway = _gateway(console_app)
    seq = _event(console_app, "key.create", "alice", "key:ci")
    assert gateway.governance is not None
    head = gateway.governance.audit.checkpoint()
    assert head is not None
    page = admin_client.get("/console/audit/verify")
    assert page.status_code == 200
    result = page.text.split('id="verify-result"', 1)[1].split("</p>", 1)[0]
    assert "OK" in result
    checkpoint = page.text.split('id="last-checkpoint"', 1)[1].split("</dl>", 1)[0]
    assert f">{head.seq}</a>" in checkpoint
    witness = page.text.split('id="witness-state"', 1)[1].split("</dl>", 1)[0]
    assert "local key in the home" in witness and "reachable" in witness
    with gateway.db.session() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.seq == seq).values(status=7))
    tampered = admin_client.get("/console/audit/verify").text
    result = tampered.split('id="verify-result"', 1)[1].split("</p>", 1)[0]
    assert "Problem (edited, at record" in result


def test_export_is_the_cli_format(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    gateway = _gateway(console_app)
    _event(console_app, "key.create", "alice", "key:ci")
    _request(console_app, key="ci", prompt="exported text")
    assert admin_client.get("/console/audit/export").status_code == 200
    jsonl = admin_client.get("/console/audit/export/download", params={"format": "jsonl"})
    assert jsonl.status_code == 200
    assert "attachment" in jsonl.headers["content-disposition"]
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    expected = "".join(export_lines(iter_records(gateway.db, Filter()), "jsonl"))
    assert jsonl.text == expected
    records = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)  # oldest first
    assert any(r["prompt"] == "exported text" for r in records)
    as_csv = admin_client.get("/console/audit/export/download", params={"format": "csv"})
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert len(rows) == len(records) + 1
    bad = admin_client.get("/console/audit/export/download", params={"format": "xml"})
    assert bad.status_code == 400 and "unknown export format" in bad.text


def test_erasure_by_an_admin(admin_client: ConsoleClient, console_app: FastAPI) -> None:
    seq = _request(console_app, key="erin-key", subject="erin", prompt="a private question of erin")
    form = admin_client.get("/console/audit/erase")
    assert form.status_code == 200 and 'name="reason"' in form.text
    unconfirmed = admin_client.submit(
        "/console/audit/erase", {"subject": "erin", "reason": "request 42"}
    )
    assert unconfirmed.status_code == 400 and 'value="erin"' in unconfirmed.text
    no_reason = admin_client.submit("/console/audit/erase", {"subject": "erin", "confirm": "yes"})
    assert no_reason.status_code == 400
    assert "a private question of erin" in admin_client.get(f"/console/audit/{seq}").text
    done = admin_client.submit(
        "/console/audit/erase", {"subject": "erin", "reason": "request 42", "confirm": "yes"}
    )
    assert done.status_code == 200
    assert 'id="erasure-summary"' in done.text
    assert "a private question of erin" not in admin_client.get(f"/console/audit/{seq}").text
    [event] = audit_events(console_app, "audit.erase")
    assert event["actor"] == admin_client.operator
    assert event["details"]["records"] >= 1
    again = admin_client.submit(
        "/console/audit/erase", {"subject": "erin", "reason": "request 42", "confirm": "yes"}
    )
    assert again.status_code == 404


def test_roles(console_client: Callable[..., ConsoleClient], console_app: FastAPI) -> None:
    viewer = console_client("viewer")
    auditor = console_client("auditor")
    for path in ("/console/audit", "/console/audit/verify", "/console/audit/export"):
        assert viewer.get(path).status_code == 403
        assert auditor.get(path).status_code == 200
    assert auditor.get("/console/audit/erase").status_code == 403
    _request(console_app, key="fay-key", subject="fay", prompt="text of fay")
    forged = auditor.submit(
        "/console/audit/erase", {"subject": "fay", "reason": "x", "confirm": "yes"}
    )
    assert forged.status_code == 403
    assert audit_events(console_app, "audit.erase") == []
    denied = [
        d for d in audit_events(console_app, "access.denied") if d["details"]["method"] == "POST"
    ]
    assert [(d["actor"], d["details"]["action"]) for d in denied] == [
        (auditor.operator, "audit.erase")
    ]
