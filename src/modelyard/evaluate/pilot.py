"""A pilot: several candidate models on the same data, one report.

Every input is checked before the first model is loaded (:func:`plan_pilot`): all the models
resolve to GGUF or endpoint versions (endpoints with a generation metric), the metric is
known, the data file parses and suits the metric, the report folder can be written. Every
problem found is listed in one error, and nothing is run, stored or written; a pilot never
fails after spending minutes on its first model because its second does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.engines.endpoints import is_endpoint
from modelyard.errors import InvalidInput, UserError
from modelyard.evaluate.data import load_rows
from modelyard.evaluate.metrics import KINDS, check_rows, metric_kind
from modelyard.evaluate.runner import EvalRunner, EvalSpec, Progress
from modelyard.evaluate.runs import RunRecord

ProgressFor = Callable[[str], AbstractContextManager[Progress]]
"""A progress context for one model's run, given its name."""


@dataclass(frozen=True)
class PilotPlan:
    """A checked pilot: each model's name as given with the version it resolved to."""

    models: tuple[tuple[str, ModelVersion], ...]
    spec: EvalSpec
    out: Path


def parse_models(models: str) -> list[str]:
    return [m.strip() for m in models.split(",") if m.strip()]


def plan_pilot(
    registry: Registry,
    names: list[str],
    spec: EvalSpec,
    out: Path,
    *,
    schema_problem: str | None = None,
) -> PilotPlan:
    """Check every input; raise one :class:`InvalidInput` listing every problem found.

    ``spec.model`` is ignored (each name in ``names`` is run in turn); ``schema_problem``
    is why the ``--schema`` file could not be read, if it could not."""
    problems: list[str] = []
    resolved = _check_models(registry, names, problems)
    _check_endpoints(resolved, spec.metric, problems)
    _check_data(spec, schema_problem, problems)
    out_problem = _out_problem(out)
    if out_problem is not None:
        problems.append(f"--out: {out_problem}")
    if problems:
        raise InvalidInput(
            f"pilot not started, nothing was run or written ({_count(problems)}):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return PilotPlan(tuple(resolved), spec, out)


def _count(problems: list[str]) -> str:
    return "1 problem" if len(problems) == 1 else f"{len(problems)} problems"


def _check_models(
    registry: Registry, names: list[str], problems: list[str]
) -> list[tuple[str, ModelVersion]]:
    if not names:
        problems.append("--models: no model named (give A,B,…)")
    resolved: list[tuple[str, ModelVersion]] = []
    for name in names:
        try:
            version = registry.resolve(name)
        except UserError as exc:
            problems.append(f"--models: {name}: {exc.message}")
            continue
        if version.format != "gguf" and not is_endpoint(version):
            problems.append(
                f"--models: {name} is {version.ref}, a {version.format} model; "
                "pilots run GGUF models"
            )
            continue
        resolved.append((name, version))
    return resolved


def _check_endpoints(
    resolved: list[tuple[str, ModelVersion]], metric: str, problems: list[str]
) -> None:
    """Endpoint versions generate; they cannot be scored by log-likelihood here."""
    if KINDS.get(metric, "generate") == "generate":
        return
    for name, version in resolved:
        if is_endpoint(version):
            problems.append(
                f"--models: {name} is {version.ref}, a remote endpoint: the {metric} metric "
                "scores log-likelihoods with local weights; use a generation metric"
            )


def _check_data(spec: EvalSpec, schema_problem: str | None, problems: list[str]) -> None:
    if schema_problem is not None:
        problems.append(f"--schema: {schema_problem}")
    try:
        kind = metric_kind(spec.metric)
    except InvalidInput as exc:
        problems.append(f"--metric: {exc.message}")
        kind = None
    if not spec.data.is_file():
        problems.append(f"--data: no such data file: {spec.data}")
        return
    try:
        if kind == "perplexity":
            _check_text(spec.data)
            return
        rows = load_rows(spec.data)
        if spec.schema is not None:
            rows = [r if r.schema else replace(r, schema=spec.schema) for r in rows]
        if kind is not None:
            check_rows(spec.metric, rows)
    except InvalidInput as exc:
        problems.append(f"--data: {exc.message}")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"--data: cannot read {spec.data}: {exc}")


def _check_text(path: Path) -> None:
    if not path.read_text(encoding="utf-8").strip():
        raise InvalidInput(f"{path} has no text to score")


def _out_problem(out: Path) -> str | None:
    """Why the report could not be written into ``out`` (which is not created here)."""
    if out.exists():
        if not out.is_dir():
            return f"{out} exists and is not a folder"
        if not os.access(out, os.W_OK | os.X_OK):
            return f"the folder {out} is not writable"
        return None
    parent = _existing_ancestor(out)
    if not parent.is_dir():
        return f"{out} cannot be created: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{out} cannot be created: {parent} is not writable"
    return None


def _existing_ancestor(path: Path) -> Path:
    for candidate in path.absolute().parents:
        if candidate.exists():
            return candidate
    return Path(path.absolute().anchor)


def run_pilot(runner: EvalRunner, plan: PilotPlan, progress_for: ProgressFor) -> list[RunRecord]:
    """Evaluate each planned version in turn (each a stored, resumable run)."""
    runs = []
    for name, version in plan.models:
        with progress_for(name) as progress:
            runs.append(runner.run(replace(plan.spec, model=version.ref), progress))
    return runs
