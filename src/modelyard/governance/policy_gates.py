"""Evaluate a policy's gates for one version and one (multi-stage) transition.

Each gate ends ``passed``, ``failed`` (with why) or ``missing`` (no evidence yet). Evidence
is read only through ``modelyard.evaluate.evidence.evidence_for``; runs of other bytes (a
different digest) do not count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import PurePath
from typing import Any, Literal

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.records import ModelVersion
from modelyard.evaluate.evidence import EvalEvidence, evidence_for
from modelyard.governance.policy import BiasRequirement, EvalRequirement, Policy
from modelyard.intake.safety import CODE_SUFFIXES, PICKLE_SUFFIXES
from modelyard.store.blobs import BlobStore
from modelyard.store.database import Database

GateStatus = Literal["passed", "failed", "missing"]
SAFE_FORMATS = ("gguf", "safetensors")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class GateResult:
    gate: str
    stage: str
    status: GateStatus
    detail: str
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "stage": str(self.stage),
            "status": self.status,
            "detail": self.detail,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class PolicyReport:
    ref: str
    current: str
    target: str
    path: tuple[str, ...]
    actor: str
    policy_source: str | None
    results: tuple[GateResult, ...]

    @property
    def allowed(self) -> bool:
        return all(r.status == "passed" for r in self.results)

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e for r in self.results for e in r.evidence))

    def summary(self) -> str:
        bad = [f"{r.gate}: {r.status} ({r.detail})" for r in self.results if r.status != "passed"]
        return "; ".join(bad) if bad else "all gates passed"

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "from": self.current,
            "to": self.target,
            "path": list(self.path),
            "actor": self.actor,
            "policy": self.policy_source,
            "allowed": self.allowed,
            "gates": [r.to_json() for r in self.results],
        }


def check_gates(
    policy: Policy,
    version: ModelVersion,
    path: list[Stage],
    *,
    actor: str,
    db: Database,
    blobs: BlobStore,
) -> list[GateResult]:
    """Every gate the stages on ``path`` require, each checked once, in a stable order."""
    results: list[GateResult] = []
    seen: set[str] = set()
    evidence: list[EvalEvidence] | None = None

    def first(key: str) -> bool:
        fresh = key not in seen
        seen.add(key)
        return fresh

    for stage in path:
        req = policy.requirements(stage)
        if req.licence and first("licence"):
            results.append(_licence(policy, version, stage))
        if req.intake and first("intake"):
            results.append(_intake(version, blobs, stage))
        if req.four_eyes and first("four-eyes"):
            results.append(_four_eyes(version, actor, stage))
        if (req.evals or req.bias) and evidence is None:
            evidence = [
                e
                for e in evidence_for(db, version.name, version.version)
                if e.model_digest == version.digest
            ]
        for ev in req.evals:
            if first(f"{ev.gate}>={ev.min}"):
                results.append(_eval(ev, evidence or [], stage))
        for bias in req.bias:
            if first(f"{bias.gate}<={bias.max}"):
                results.append(_bias(bias, evidence or [], stage))
    return results


def _licence(policy: Policy, version: ModelVersion, stage: Stage) -> GateResult:
    licence = str(version.metadata.get("license") or "unknown").strip().lower()
    allowed = ", ".join(policy.licences)
    if licence == "unknown":
        return GateResult(
            "licence", stage, "failed", f"licence unknown: refused (allowed: {allowed})"
        )
    if any(fnmatch(licence, pattern) for pattern in policy.licences):
        return GateResult("licence", stage, "passed", f"licence {licence} is allowed")
    return GateResult(
        "licence", stage, "failed", f"licence {licence} is not in the allow-list ({allowed})"
    )


def _intake(version: ModelVersion, blobs: BlobStore, stage: Stage) -> GateResult:
    if version.format not in SAFE_FORMATS:
        return GateResult("intake", stage, "failed", f"format {version.format} is not safe")
    for entry in version.files:
        suffix = PurePath(entry.path).suffix.lower()
        if suffix in PICKLE_SUFFIXES or suffix in CODE_SUFFIXES:
            return GateResult("intake", stage, "failed", f"{entry.path}: unsafe file type")
    for entry in version.files:
        problem = _verify_blob(blobs, entry.sha256)
        if problem:
            return GateResult("intake", stage, "failed", f"{entry.path}: {problem}")
    return GateResult(
        "intake",
        stage,
        "passed",
        f"format {version.format} is safe; {len(version.files)} file(s) re-hashed, sha256 matches",
    )


def _verify_blob(blobs: BlobStore, sha256: str) -> str | None:
    path = blobs.path_for(sha256)
    if not path.is_file():
        return "the stored file is missing"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        return "the stored bytes do not match their sha256 (corrupt or tampered)"
    return None


def _four_eyes(version: ModelVersion, actor: str, stage: Stage) -> GateResult:
    makers = {version.created_by}
    for key in ("tuned_by", "quantized_by", "imported_by"):
        if isinstance(version.lineage.get(key), str):
            makers.add(version.lineage[key])
    if actor in makers:
        return GateResult(
            "four-eyes",
            stage,
            "failed",
            f"{actor} made {version.ref} (created by {version.created_by}); "
            "someone else must approve it",
        )
    return GateResult("four-eyes", stage, "passed", f"approver {actor} is not {version.created_by}")


def _eval(req: EvalRequirement, evidence: list[EvalEvidence], stage: Stage) -> GateResult:
    runs = [e for e in evidence if e.kind == "eval" and e.suite == req.suite]
    runs = [e for e in runs if e.metric == req.metric]
    if not runs:
        return GateResult(
            req.gate,
            stage,
            "missing",
            f"no finished eval run of suite {req.suite} with metric {req.metric} "
            f"(needs score >= {req.min:g})",
        )
    run = runs[0]
    if run.score >= req.min:
        return GateResult(
            req.gate,
            stage,
            "passed",
            f"score {run.score:.4g} >= {req.min:g} (run {run.run_id}, {run.rows} rows)",
            (run.run_id,),
        )
    return GateResult(
        req.gate,
        stage,
        "failed",
        f"score {run.score:.4g} is below the minimum {req.min:g} (run {run.run_id})",
        (run.run_id,),
    )


def _bias(req: BiasRequirement, evidence: list[EvalEvidence], stage: Stage) -> GateResult:
    runs = [e for e in evidence if e.kind == "bias" and e.metric == req.metric]
    if not runs:
        return GateResult(
            req.gate,
            stage,
            "missing",
            f"no finished bias probe {req.gate} (needs gap <= {req.max:g})",
        )
    run = runs[0]
    if run.score <= req.max:
        return GateResult(
            req.gate,
            stage,
            "passed",
            f"gap {run.score:.4g} <= {req.max:g} (run {run.run_id})",
            (run.run_id,),
        )
    return GateResult(
        req.gate,
        stage,
        "failed",
        f"gap {run.score:.4g} exceeds the bound {req.max:g} (run {run.run_id})",
        (run.run_id,),
    )
