"""Advisories: raise (with the API's validation errors), list, withdraw."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from tests.web.conftest import ConsoleClient, audit_events
from tests.web.test_models_pages import add


def test_raise_list_and_withdraw(
    console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    add(console_app.state.gateway.registry, "m")
    operator = console_client("operator")
    prefilled = operator.get("/console/advisories?ref=m@1").text
    assert 'id="advisory-ref" name="ref" list="version-refs" required value="m@1"' in prefilled
    raised = operator.submit(
        "/console/advisories",
        {
            "ref": "m@1",
            "advisory_id": "CVE-2026-12345",
            "severity": "critical",
            "action": "block",
            "summary": "tokenizer overflow",
        },
    )
    assert raised.status_code == 200 and "Advisory CVE-2026-12345 raised" in raised.text
    assert "tokenizer overflow" in raised.text and 'id="withdraw-CVE-2026-12345"' in raised.text
    assert audit_events(console_app, "advisory.add")[-1]["actor"] == operator.operator

    withdrawn = operator.submit(
        "/console/advisories/withdraw", {"ref": "m@1", "advisory_id": "CVE-2026-12345"}
    )
    assert withdrawn.status_code == 200 and 'id="no-advisories"' in withdrawn.text
    everything = operator.get("/console/advisories?all=true").text
    assert "CVE-2026-12345" in everything and "withdrawn" in everything
    assert audit_events(console_app, "advisory.withdraw")[-1]["actor"] == operator.operator


def test_bad_advisories_show_the_api_error(
    console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    add(console_app.state.gateway.registry, "m")
    operator = console_client("operator")
    fields = {"ref": "m@1", "advisory_id": "bad id!", "severity": "high", "action": "warn"}
    answer = operator.submit("/console/advisories", {**fields, "summary": "kept"})
    assert answer.status_code == 400
    assert "invalid advisory id" in answer.text and "field: <code>id</code>" in answer.text
    assert 'value="bad id!"' in answer.text and "kept</textarea>" in answer.text
    again = operator.submit("/console/advisories", {**fields, "advisory_id": "A-1"})
    assert again.status_code == 200
    duplicate = operator.submit("/console/advisories", {**fields, "advisory_id": "A-1"})
    assert duplicate.status_code == 409 and "already recorded" in duplicate.text
    gone = operator.submit("/console/advisories/withdraw", {"ref": "m@1", "advisory_id": "Z"})
    assert gone.status_code == 404


def test_viewers_cannot_raise(console_app: FastAPI, viewer_client: ConsoleClient) -> None:
    add(console_app.state.gateway.registry, "m")
    assert 'id="raise-form"' not in viewer_client.get("/console/advisories").text
    refused = viewer_client.submit(
        "/console/advisories",
        {"ref": "m@1", "advisory_id": "A-1", "severity": "low", "action": "warn"},
    )
    assert refused.status_code == 403
    assert audit_events(console_app, "advisory.add") == []
