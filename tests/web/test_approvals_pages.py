"""Approvals: the inbox, a proposal's gates as they stand for the viewing approver (with
evidence links), approve and reject with a reason, and the refusals."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi import FastAPI

from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.proposals import Proposal, Proposals
from modelyard.catalog.registry import Registry
from modelyard.governance.policy import load_policy
from tests.lifecycle.helpers import add_run
from tests.web.conftest import ConsoleClient, audit_events
from tests.web.test_models_pages import add

POLICY = """
[policy.stages.production]
four_eyes = true
evals = [{ suite = "clinic-qa", metric = "contains", min = 0.8 }]
"""


@pytest.fixture
def registry(console_app: FastAPI) -> Registry:
    settings = console_app.state.gateway.settings
    (settings.home / "modelyard.toml").write_text(POLICY)
    registry: Registry = console_app.state.gateway.registry
    return registry


def propose(registry: Registry, proposer: str, *, score: float = 0.9) -> tuple[Proposal, str]:
    version = add(registry, "m")
    run_id = add_run(registry, version, score=score)
    lifecycle = Lifecycle(registry, registry.settings, load_policy(registry.settings))
    proposal = Proposals(lifecycle).propose(
        version.ref, "production", actor=proposer, reason="pilot passed"
    )
    return proposal, run_id


def test_inbox_and_approval(
    registry: Registry, console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    operator = console_client("operator")
    approver = console_client("approver")
    proposal, run_id = propose(registry, operator.operator)

    inbox = approver.get("/console/approvals").text
    assert f'id="proposal-{proposal.id}"' in inbox and "pilot passed" in inbox
    detail = approver.get(f"/console/approvals/{proposal.id}").text
    gates = detail[detail.index('id="gates"') :]
    assert re.search(r"four-eyes</td>.*?status-passed", gates, re.S)
    assert re.search(r"clinic-qa.*?status-passed", gates, re.S)
    assert f'href="/console/evals/{run_id}"' in gates  # the evidence, linked
    assert "All gates pass" in detail and 'id="approve-form"' in detail

    answer = approver.submit(
        f"/console/approvals/{proposal.id}/approve", {"reason": "evidence is sound"}
    )
    assert answer.status_code == 200 and "Approved: m@1 is now production" in answer.text
    assert 'id="proposal-status">approved<' in answer.text
    approved = audit_events(console_app, "lifecycle.approve")
    assert approved[-1]["actor"] == approver.operator
    promoted = audit_events(console_app, "lifecycle.promote")
    assert promoted[-1]["actor"] == approver.operator
    assert 'id="version-stage">production<' in approver.get("/console/models/m/1").text
    assert "Recently decided" in approver.get("/console/approvals").text


def test_the_proposer_cannot_approve_their_own(
    registry: Registry, console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    admin = console_client("admin")
    proposal, _ = propose(registry, admin.operator)
    detail = admin.get(f"/console/approvals/{proposal.id}").text
    assert re.search(r"four-eyes</td>.*?status-failed", detail, re.S)
    answer = admin.submit(f"/console/approvals/{proposal.id}/approve", {"reason": "mine"})
    assert answer.status_code == 403
    assert "cannot approve it" in answer.text and "mine</textarea>" in answer.text
    assert audit_events(console_app, "lifecycle.promote") == []


def test_failing_gates_refuse_the_approval(
    registry: Registry, console_client: Callable[..., ConsoleClient]
) -> None:
    operator = console_client("operator")
    approver = console_client("approver")
    proposal, _ = propose(registry, operator.operator, score=0.2)
    detail = approver.get(f"/console/approvals/{proposal.id}").text
    assert "Not every gate passes" in detail and "is below the minimum" in detail
    answer = approver.submit(f"/console/approvals/{proposal.id}/approve", {"reason": "ship it"})
    assert answer.status_code == 403 and "refused by policy" in answer.text


def test_reject_needs_a_reason(
    registry: Registry, console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    operator = console_client("operator")
    approver = console_client("approver")
    proposal, _ = propose(registry, operator.operator)
    empty = approver.submit(f"/console/approvals/{proposal.id}/reject", {"reason": ""})
    assert empty.status_code == 400 and "a rejection needs a reason" in empty.text
    answer = approver.submit(
        f"/console/approvals/{proposal.id}/reject", {"reason": "bias probe first"}
    )
    assert answer.status_code == 200 and "rejected" in answer.text
    assert audit_events(console_app, "lifecycle.reject")[-1]["actor"] == approver.operator
    assert 'id="inbox-empty"' in approver.get("/console/approvals").text


def test_an_operator_may_not_approve_but_may_withdraw(
    registry: Registry, console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    operator = console_client("operator")
    other = console_client("operator")
    proposal, _ = propose(registry, operator.operator)
    page = operator.get(f"/console/approvals/{proposal.id}").text
    assert 'id="approve-form"' not in page and 'id="withdraw-form"' in page
    refused = operator.submit(f"/console/approvals/{proposal.id}/approve", {"reason": "x"})
    assert refused.status_code == 403
    assert audit_events(console_app, "access.denied")[-1]["details"]["action"] == (
        "lifecycle.promote"
    )
    not_theirs = other.submit(f"/console/approvals/{proposal.id}/withdraw", {"reason": "x"})
    assert not_theirs.status_code == 403 and "may withdraw it" in not_theirs.text
    answer = operator.submit(f"/console/approvals/{proposal.id}/withdraw", {"reason": "too early"})
    assert answer.status_code == 200 and "withdrawn" in answer.text


def test_unknown_proposal(viewer_client: ConsoleClient) -> None:
    answer = viewer_client.get("/console/approvals/999")
    assert answer.status_code == 404 and "no proposal #999" in answer.text
