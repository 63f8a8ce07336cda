"""``modelyard approvals``: propose a promotion, and approve or reject one as a second person."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelyard.cli.governed import POLICY_OPTION, lifecycle
from modelyard.cli.output import print_json, print_table, stderr, stdout
from modelyard.cli.runtime import Runtime

if TYPE_CHECKING:
    from modelyard.catalog.proposals import Proposals

app = typer.Typer(
    help="Four-eyes promotions: one operator proposes, another approves or rejects.",
    no_args_is_help=True,
)
JSON = typer.Option(False, "--json", help="Print JSON for scripts.")


def _proposals(ctx: typer.Context, policy: Path | None = None) -> Proposals:
    from modelyard.catalog.proposals import Proposals

    return Proposals(lifecycle(ctx.obj, policy))


@app.command("propose")
def propose_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="NAME@N."),
    to: str = typer.Option(..., "--to", help="The stage to promote it to."),
    reason: str = typer.Option(..., "--reason", help="Why (shown to the approver)."),
    as_json: bool = JSON,
) -> None:
    """Propose moving a version to a stage; a second operator approves it."""
    runtime: Runtime = ctx.obj
    proposal = _proposals(ctx).propose(
        ref, to, actor=runtime.acting("lifecycle.propose"), reason=reason
    )
    if as_json:
        print_json(proposal.to_json())
        return
    stdout().print(
        f"proposal #{proposal.id}: {proposal.ref} {proposal.from_stage} → {proposal.to_stage}, "
        f"waiting for a second operator (`modelyard approvals approve {proposal.id}`)"
    )


@app.command("list")
def list_command(
    ctx: typer.Context,
    every: bool = typer.Option(False, "--all", help="Decided ones too, not only pending."),
    as_json: bool = JSON,
) -> None:
    """The approvals inbox: pending proposals (``--all``: every one)."""
    runtime: Runtime = ctx.obj
    runtime.acting("catalog.read")
    service = _proposals(ctx)
    proposals = service.list() if every else service.pending()
    if as_json:
        print_json([p.to_json() for p in proposals])
        return
    print_table(
        None,
        ["#", "version", "move", "proposer", "reason", "status", "decided by"],
        [
            [
                p.id,
                p.ref,
                f"{p.from_stage} → {p.to_stage}",
                p.proposer,
                p.reason,
                p.status,
                p.decided_by or "",
            ]
            for p in proposals
        ],
        drop=(4, 6),
    )


@app.command("approve")
def approve_command(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="The proposal's number."),
    reason: str = typer.Option(..., "--reason", help="Why you approve."),
    policy: Path | None = POLICY_OPTION,
    as_json: bool = JSON,
) -> None:
    """Approve a proposal: it is promoted if every gate passes for you as approver."""
    runtime: Runtime = ctx.obj
    actor = runtime.acting("lifecycle.promote")
    promotion = _proposals(ctx, policy).approve(proposal_id, actor=actor, reason=reason)
    if as_json:
        print_json(promotion.to_json())
        return
    report = promotion.report
    stdout().print(f"approved #{proposal_id}: {report.ref} is now {report.target}")


@app.command("reject")
def reject_command(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(..., help="The proposal's number."),
    reason: str = typer.Option(..., "--reason", help="Why."),
    as_json: bool = JSON,
) -> None:
    """Reject a proposal (the proposer rejecting their own withdraws it)."""
    runtime: Runtime = ctx.obj
    operator = runtime.operator
    proposal = _proposals(ctx).get(proposal_id)
    own = operator.authenticated and operator.actor == proposal.proposer
    actor = operator.actor if own else runtime.acting("lifecycle.promote")
    closed = _proposals(ctx).reject(proposal_id, actor=actor, reason=reason)
    if as_json:
        print_json(closed.to_json())
        return
    stderr().print(f"#{closed.id} {closed.status}")


@app.command("check")
def check_command(
    ctx: typer.Context,
    proposal_id: int = typer.Argument(...),
    as_json: bool = JSON,
) -> None:
    """The gates of a proposal as they stand for you as approver."""
    runtime: Runtime = ctx.obj
    report = _proposals(ctx).check(proposal_id, actor=runtime.operator.actor)
    if as_json:
        print_json(report.to_json())
        return
    print_table(
        f"#{proposal_id} {report.ref} → {report.target}",
        ["gate", "stage", "status", "detail"],
        [[r.gate, r.stage, r.status, r.detail] for r in report.results],
    )
    if not report.allowed:
        raise typer.Exit(1)
