"""Stored evaluation runs: one ``eval_runs`` row per run, one ``eval_rows`` row per scored row.

A run starts ``running``, gains a result row as each data row is scored (its own short
transaction, so an interruption loses at most the row in flight), and ends ``done`` with
its aggregate, or ``failed`` when interrupted (it can then be resumed).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from modelyard.catalog.records import ModelVersion
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.evaluate.stats import Estimate
from modelyard.store.database import Database
from modelyard.store.evaluation_tables import EvalRowResult, EvalRunRow


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class RunRecord:
    id: str
    kind: str
    model_name: str
    model_version: int
    model_digest: str
    suite: str | None
    metric: str
    data_path: str
    data_sha256: str
    rows_total: int
    rows_done: int
    status: str
    score: float | None
    ci_low: float | None
    ci_high: float | None
    details: dict[str, Any]
    config: dict[str, Any]
    duration_s: float | None
    created_by: str
    created_at: datetime
    finished_at: datetime | None

    @property
    def model_ref(self) -> str:
        return f"{self.model_name}@{self.model_version}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"] = self.model_ref
        data["created_at"] = self.created_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


def _record(row: EvalRunRow) -> RunRecord:
    created = _aware(row.created_at)
    assert created is not None
    return RunRecord(
        id=row.id,
        kind=row.kind,
        model_name=row.model_name,
        model_version=row.model_version,
        model_digest=row.model_digest,
        suite=row.suite,
        metric=row.metric,
        data_path=row.data_path,
        data_sha256=row.data_sha256,
        rows_total=row.rows_total,
        rows_done=row.rows_done,
        status=row.status,
        score=row.score,
        ci_low=row.ci_low,
        ci_high=row.ci_high,
        details=dict(row.details or {}),
        config=dict(row.config or {}),
        duration_s=row.duration_s,
        created_by=row.created_by,
        created_at=created,
        finished_at=_aware(row.finished_at),
    )


@dataclass(frozen=True)
class RowResult:
    index: int
    score: float
    result: dict[str, Any]


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        *,
        kind: str,
        model: ModelVersion,
        suite: str | None,
        metric: str,
        data_path: str,
        data_sha256: str,
        rows_total: int,
        config: dict[str, Any],
        created_by: str,
    ) -> RunRecord:
        row = EvalRunRow(
            id=str(uuid.uuid4()),
            kind=kind,
            model_name=model.name,
            model_version=model.version,
            model_digest=model.digest,
            suite=suite,
            metric=metric,
            data_path=data_path,
            data_sha256=data_sha256,
            rows_total=rows_total,
            rows_done=0,
            status="running",
            details={},
            config=config,
            duration_s=0.0,
            created_by=created_by,
            created_at=datetime.now(UTC),
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
            return _record(row)

    def get(self, run_id: str) -> RunRecord:
        with self.db.session() as session:
            row = session.get(EvalRunRow, run_id)
            if row is None:
                prefix = EvalRunRow.id.startswith(run_id, autoescape=True)
                matches = list(session.scalars(select(EvalRunRow).where(prefix)))
                if len(matches) != 1 or len(run_id) < 4:
                    raise NotFound(f"no evaluation run {run_id!r}")
                row = matches[0]
            return _record(row)

    def find_resumable(
        self,
        *,
        kind: str,
        model: ModelVersion,
        metric: str,
        data_sha256: str,
        config: dict[str, Any],
    ) -> RunRecord | None:
        """The newest unfinished run of the same model, data, metric and settings."""
        with self.db.session() as session:
            rows = session.scalars(
                select(EvalRunRow)
                .where(
                    EvalRunRow.kind == kind,
                    EvalRunRow.model_name == model.name,
                    EvalRunRow.model_version == model.version,
                    EvalRunRow.model_digest == model.digest,
                    EvalRunRow.metric == metric,
                    EvalRunRow.data_sha256 == data_sha256,
                    EvalRunRow.status.in_(("running", "failed")),
                )
                .order_by(EvalRunRow.created_at.desc())
            )
            for row in rows:
                if dict(row.config or {}) == config:
                    return _record(row)
        return None

    def reopen(self, run_id: str) -> RunRecord:
        with self.db.session() as session:
            row = session.get(EvalRunRow, run_id)
            if row is None:
                raise NotFound(f"no evaluation run {run_id!r}")
            if row.status == "done":
                raise Conflict(f"run {run_id} is already done; nothing to resume")
            row.status = "running"
            return _record(row)

    def rows(self, run_id: str) -> list[RowResult]:
        with self.db.session() as session:
            found = session.scalars(
                select(EvalRowResult)
                .where(EvalRowResult.run_id == run_id)
                .order_by(EvalRowResult.row_index)
            )
            return [RowResult(r.row_index, r.score, dict(r.result or {})) for r in found]

    def save_row(self, run_id: str, index: int, score: float, result: dict[str, Any]) -> None:
        """Record one scored row and count it, in one transaction."""
        with self.db.session() as session:
            session.add(EvalRowResult(run_id=run_id, row_index=index, score=score, result=result))
            session.flush()
            run = session.get(EvalRunRow, run_id)
            assert run is not None
            run.rows_done = (
                session.scalar(select(func.count()).where(EvalRowResult.run_id == run_id)) or 0
            )

    def add_duration(self, run_id: str, seconds: float, *, status: str | None = None) -> None:
        with self.db.session() as session:
            run = session.get(EvalRunRow, run_id)
            assert run is not None
            run.duration_s = (run.duration_s or 0.0) + seconds
            if status is not None:
                run.status = status

    def finish(
        self, run_id: str, estimate: Estimate, details: dict[str, Any], seconds: float
    ) -> RunRecord:
        with self.db.session() as session:
            run = session.get(EvalRunRow, run_id)
            assert run is not None
            run.score = estimate.value
            run.ci_low = estimate.ci_low
            run.ci_high = estimate.ci_high
            run.details = details
            run.duration_s = (run.duration_s or 0.0) + seconds
            run.status = "done"
            run.finished_at = datetime.now(UTC)
            session.flush()
            return _record(run)

    def list_runs(self, model: str | None = None, limit: int = 50) -> list[RunRecord]:
        query = select(EvalRunRow).order_by(EvalRunRow.created_at.desc()).limit(limit)
        if model:
            name, _, version = model.partition("@")
            query = query.where(EvalRunRow.model_name == name)
            if version:
                if not version.isdigit():
                    raise InvalidInput(f"bad model reference {model!r}: use NAME or NAME@N")
                query = query.where(EvalRunRow.model_version == int(version))
        with self.db.session() as session:
            return [_record(r) for r in session.scalars(query)]
