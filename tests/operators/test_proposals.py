"""Four-eyes between two authenticated people: propose, approve, reject; the proposer and
the makers never approve; OS users, keys and impersonations never count."""

from __future__ import annotations

import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.proposals import Proposals
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import Conflict, Forbidden, InvalidInput
from modelyard.governance.policy import Policy, load_policy, parse_policy
from tests.lifecycle.helpers import add_run, add_version

POLICY = b"""
[policy]
[policy.stages.production]
licence = true
four_eyes = true
eval_evidence = true
"""


def inbox(registry: Registry, settings: Settings, text: bytes = POLICY) -> Proposals:
    policy = parse_policy(text, source="test.toml", yaml_file=False)
    return Proposals(Lifecycle(registry, settings, policy))


def gate(report_json: dict[str, object], name: str) -> tuple[str, str]:
    for g in report_json["gates"]:  # type: ignore[attr-defined]
        if g["gate"] == name:
            return g["status"], g["detail"]
    raise AssertionError(f"no gate {name}")


def test_proposed_by_one_approved_by_another(registry: Registry, settings: Settings) -> None:
    version = add_version(registry, "m", created_by="carol")
    add_run(registry, version)
    proposals = inbox(registry, settings)
    proposal = proposals.propose("m@1", "production", actor="alice", reason="pilot passed")
    assert proposal.status == "pending" and proposal.from_stage == "registered"
    assert [p.id for p in proposals.pending()] == [proposal.id]
    with pytest.raises(Conflict, match="already proposed"):
        proposals.propose("m@1", "production", actor="dave", reason="me too")
    # the proposer cannot approve their own proposal
    with pytest.raises(Forbidden, match="cannot approve"):
        proposals.approve(proposal.id, actor="alice", reason="looks fine")
    assert gate(proposals.check(proposal.id, actor="alice").to_json(), "four-eyes")[0] == "failed"
    # the maker cannot either
    with pytest.raises(Forbidden, match="refused by policy"):
        proposals.approve(proposal.id, actor="carol", reason="mine, but fine")
    promotion = proposals.approve(proposal.id, actor="bob", reason="checked the eval")
    assert promotion.report.target == "production"
    status, detail = gate(promotion.report.to_json(), "four-eyes")
    assert status == "passed" and "alice" in detail and "carol" in detail
    done = proposals.get(proposal.id)
    assert (done.status, done.decided_by) == ("approved", "bob")
    assert proposals.pending() == []
    with pytest.raises(Conflict, match="already approved"):
        proposals.approve(proposal.id, actor="erin", reason="again")
    kinds = [
        (r["details"]["event"], r["actor"])
        for r in iter_records(registry.db, Filter(kind="event"))
        if r["target"] == "m@1"
    ]
    assert ("lifecycle.propose", "alice") in kinds
    assert kinds[-2:] == [("lifecycle.promote", "bob"), ("lifecycle.approve", "bob")]


@pytest.mark.parametrize(
    "approver",
    ["os:root", "key:ci", "bob (impersonated by os:root)", "alice (impersonated by bob)"],
)
def test_only_logged_in_people_satisfy_four_eyes(
    registry: Registry, settings: Settings, approver: str
) -> None:
    version = add_version(registry, "m", created_by="carol")
    add_run(registry, version)
    proposals = inbox(registry, settings)
    proposal = proposals.propose("m@1", "production", actor="alice", reason="ready")
    report = proposals.check(proposal.id, actor=approver)
    status, detail = gate(report.to_json(), "four-eyes")
    assert status == "failed"
    assert ("logged in" in detail) or ("cannot approve" in detail)
    with pytest.raises(Forbidden):
        proposals.approve(proposal.id, actor=approver, reason="go")


def test_rejecting_and_withdrawing(registry: Registry, settings: Settings) -> None:
    add_version(registry, "m", created_by="carol")
    proposals = inbox(registry, settings)
    first = proposals.propose("m@1", "production", actor="alice", reason="try")
    rejected = proposals.reject(first.id, actor="bob", reason="no eval yet")
    assert (rejected.status, rejected.decided_by) == ("rejected", "bob")
    second = proposals.propose("m@1", "production", actor="alice", reason="again")
    assert proposals.reject(second.id, actor="alice", reason="oops").status == "withdrawn"
    with pytest.raises(InvalidInput, match="reason"):
        proposals.propose("m@1", "production", actor="alice", reason="  ")


def test_a_proposal_is_stale_when_the_version_moved(registry: Registry, settings: Settings) -> None:
    version = add_version(registry, "m", created_by="carol")
    add_run(registry, version)
    proposals = inbox(registry, settings)
    proposal = proposals.propose("m@1", "production", actor="alice", reason="ready")
    proposals.lifecycle.promote("m@1", "candidate", actor="bob", reason="meanwhile")
    with pytest.raises(Conflict, match="propose it again"):
        proposals.approve(proposal.id, actor="bob", reason="go")
    assert proposals.get(proposal.id).status == "pending"


def test_no_policy_file_needs_an_audited_override(registry: Registry, settings: Settings) -> None:
    add_version(registry, "m", created_by="carol")
    policy = load_policy(settings)
    assert policy.missing
    lifecycle = Lifecycle(registry, settings, policy)
    assert lifecycle.promote("m@1", "candidate", actor="bob", reason="below the line").transitions
    with pytest.raises(Forbidden, match="no policy file"):
        lifecycle.promote("m@1", "production", actor="bob", reason="go")
    promotion = lifecycle.promote(
        "m@1", "production", actor="bob", reason="go", override_no_policy=True
    )
    assert gate(promotion.report.to_json(), "policy")[0] == "passed"
    record = [
        r
        for r in iter_records(registry.db, Filter(kind="event"))
        if r["details"]["event"] == "lifecycle.promote" and r["details"]["to"] == "production"
    ][-1]
    assert record["details"]["override_no_policy"] is True
    # an explicit policy object (built in code) is a policy: no override needed
    Lifecycle(registry, settings, Policy()).promote("m@1", "deprecated", actor="bob", reason="x")
