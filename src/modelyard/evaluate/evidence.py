"""Evaluation evidence as the lifecycle gates see it: finished runs of a model version.

This is the contract between evaluation (which writes ``eval_runs``) and the policy gates
(which read them). Bias probes are runs of kind ``bias`` whose ``metric`` names the probe
category (e.g. ``bias:gender``) and whose ``score`` is the measured gap (lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select

from modelyard.store.database import Database
from modelyard.store.evaluation_tables import EvalRunRow

EvidenceKind = Literal["eval", "bias"]


@dataclass(frozen=True)
class EvalEvidence:
    run_id: str
    kind: str
    model_ref: str
    model_digest: str
    suite: str | None
    metric: str
    score: float
    ci_low: float | None
    ci_high: float | None
    rows: int
    finished_at: datetime


def evidence_for(db: Database, name: str, version: int) -> list[EvalEvidence]:
    """Every finished run of ``name@version``, newest first."""
    with db.session() as session:
        rows = session.scalars(
            select(EvalRunRow)
            .where(
                EvalRunRow.model_name == name,
                EvalRunRow.model_version == version,
                EvalRunRow.status == "done",
            )
            .order_by(EvalRunRow.finished_at.desc())
        )
        return [
            EvalEvidence(
                run_id=row.id,
                kind=row.kind,
                model_ref=f"{row.model_name}@{row.model_version}",
                model_digest=row.model_digest,
                suite=row.suite,
                metric=row.metric,
                score=float(row.score if row.score is not None else 0.0),
                ci_low=row.ci_low,
                ci_high=row.ci_high,
                rows=row.rows_done,
                finished_at=(row.finished_at or row.created_at).replace(tzinfo=UTC)
                if (row.finished_at or row.created_at).tzinfo is None
                else (row.finished_at or row.created_at),
            )
            for row in rows
        ]
