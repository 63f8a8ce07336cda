"""Evaluate a policy's gates for one version and one (multi-stage) transition.

Each gate ends ``passed``, ``failed`` (with why) or ``missing`` (no evidence yet). Evidence
is read only through ``modelyard.evaluate.evidence.evidence_for``; runs of other bytes (a
different digest) do not count. The ``signature`` gate re-hashes the stored files and checks
a stored model-signing bundle by a trusted key over exactly those digests; the
``trial_load`` gate reads the newest trial load recorded for these bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import PurePath
from typing import Any, Literal

from sqlalchemy import select

from modelyard.catalog.lifecycle import MAIN_LINE, Stage
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.rows import find_version
from modelyard.catalog.signing import find_valid, read_public_key
from modelyard.engines.endpoints import EndpointSpec, is_endpoint
from modelyard.errors import InvalidInput
from modelyard.evaluate.evidence import EvalEvidence, evidence_for
from modelyard.governance.policy import BiasRequirement, EvalRequirement, Policy
from modelyard.intake.safety import CODE_SUFFIXES, PICKLE_SUFFIXES
from modelyard.operators.principal import is_authenticated_person, real_identity
from modelyard.store.attestation_tables import TrialLoadRow
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
    proposer: str | None = None,
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
            results.append(_four_eyes(version, actor, stage, proposer))
        if req.trial_load and first("trial_load"):
            results.append(_trial_load(db, version, stage))
        if req.signature and first("signature"):
            results.append(_signature(policy, version, db, blobs, stage))
        if (req.evals or req.bias or req.eval_evidence) and evidence is None:
            evidence = [
                e
                for e in evidence_for(db, version.name, version.version)
                if e.model_digest == version.digest
            ]
        if req.eval_evidence and first("eval_evidence"):
            results.append(_any_eval(evidence or [], stage))
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
    if is_endpoint(version):
        return _endpoint_intake(version, stage)
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


def _endpoint_intake(version: ModelVersion, stage: Stage) -> GateResult:
    """An endpoint version has no files: its recorded identity (what the upstream reported
    at registration) must be there and re-hash to the version's digest."""
    try:
        spec = EndpointSpec.of(version)
    except InvalidInput as exc:
        return GateResult("intake", stage, "failed", exc.message)
    if spec.digest() != version.digest:
        return GateResult(
            "intake", stage, "failed", "the recorded endpoint identity does not match its sha256"
        )
    weights = spec.identity.get("weights_digest") or "not exposed by the upstream"
    return GateResult(
        "intake",
        stage,
        "passed",
        f"remote endpoint: upstream model {spec.identity.get('model_id')!r} at "
        f"{len(spec.urls)} replica(s); weights digest {weights}; identity sha256 matches",
    )


def _verify_blob(blobs: BlobStore, sha256: str) -> str | None:
    path = blobs.path_for(sha256)
    if not path.is_file():
        return "the stored file is missing"
    if _sha256_of(path) != sha256:
        return "the stored bytes do not match their sha256 (corrupt or tampered)"
    return None


def _sha256_of(path: PurePath) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def signature_required_at(policy: Policy, stage: Stage) -> bool:
    """Whether a version at ``stage`` must carry a valid signature (it had to pass a
    ``signature`` gate to get there): checked again at every load."""
    if stage == Stage.RETIRED:
        return False
    here = MAIN_LINE.index(stage)
    return any(
        req.signature and MAIN_LINE.index(required) <= here
        for required, req in policy.stages.items()
    )


def trusted_keys(policy: Policy) -> list[bytes]:
    """The policy's trusted public keys (a clear InvalidInput when one cannot be read)."""
    keys = []
    for path in policy.key_paths():
        try:
            keys.append(read_public_key(path))
        except InvalidInput as exc:
            raise InvalidInput(f"policy signing_keys: {exc.message}", param="policy") from exc
    return keys


def _signature(
    policy: Policy, version: ModelVersion, db: Database, blobs: BlobStore, stage: Stage
) -> GateResult:
    actual = {}
    for entry in version.files:
        path = blobs.path_for(entry.sha256)
        if not path.is_file():
            return GateResult("signature", stage, "failed", f"{entry.path}: stored file missing")
        actual[entry.path] = _sha256_of(path)
    signature, why = find_valid(db, version, trusted_keys(policy), actual=actual)
    if signature is None:
        status: GateStatus = "missing" if why.endswith("has no signature") else "failed"
        return GateResult("signature", stage, status, why)
    return GateResult(
        "signature",
        stage,
        "passed",
        f"signed by trusted key {signature.key_sha256[:12]} ({signature.signed_by}); "
        f"{len(actual)} stored file(s) re-hashed and match the signature",
        (f"signature:{signature.bundle_sha256}",),
    )


def _trial_load(db: Database, version: ModelVersion, stage: Stage) -> GateResult:
    with db.session() as session:
        row = find_version(session, version.ref)
        latest = session.scalar(
            select(TrialLoadRow)
            .where(TrialLoadRow.version_id == row.id, TrialLoadRow.model_digest == version.digest)
            .order_by(TrialLoadRow.id.desc())
            .limit(1)
        )
        if latest is None:
            return GateResult(
                "trial_load",
                stage,
                "missing",
                f"no trial load of these bytes: run `modelyard models trial-load {version.ref}`",
            )
        evidence = (f"trial-load:{latest.id}",)
        if latest.ok:
            return GateResult(
                "trial_load", stage, "passed", f"{latest.detail} ({latest.engine})", evidence
            )
        tail = "\n".join(latest.log_tail.splitlines()[-5:])
        return GateResult(
            "trial_load",
            stage,
            "failed",
            latest.detail + (f"; loader's last lines:\n{tail}" if tail else ""),
            evidence,
        )


def _four_eyes(version: ModelVersion, actor: str, stage: Stage, proposer: str | None) -> GateResult:
    """Two people who logged in: the approver (``actor``, by their real identity) is an
    authenticated operator, made none of the version, and did not propose the change."""
    approver = real_identity(actor)
    if not is_authenticated_person(actor):
        return GateResult(
            "four-eyes",
            stage,
            "failed",
            f"{actor} is not an operator who logged in: four-eyes takes two people "
            "authenticated by `modelyard login` or the console (an OS user, a key or an "
            "impersonation never counts)",
        )
    makers = {version.created_by}
    for key in ("tuned_by", "quantized_by", "imported_by"):
        if isinstance(version.lineage.get(key), str):
            makers.add(version.lineage[key])
    makers = {real_identity(m) for m in makers}
    if approver in makers:
        return GateResult(
            "four-eyes",
            stage,
            "failed",
            f"{actor} made {version.ref} (created by {version.created_by}); "
            "someone else must approve it",
        )
    if proposer is not None and real_identity(proposer) == approver:
        return GateResult(
            "four-eyes",
            stage,
            "failed",
            f"{actor} proposed this change and cannot approve it; a second operator must",
        )
    who = f"approver {actor} is neither the maker ({version.created_by})"
    return GateResult(
        "four-eyes",
        stage,
        "passed",
        who + (f" nor the proposer ({proposer})" if proposer else ""),
    )


def _any_eval(evidence: list[EvalEvidence], stage: Stage) -> GateResult:
    runs = [e for e in evidence if e.kind == "eval"]
    if not runs:
        return GateResult(
            "eval_evidence",
            stage,
            "missing",
            "no finished eval run of these bytes (`modelyard eval run --model NAME@N …`)",
        )
    run = runs[0]
    return GateResult(
        "eval_evidence",
        stage,
        "passed",
        f"{len(runs)} finished eval run(s); newest {run.run_id}: {run.metric} {run.score:.4g} "
        f"on {run.rows} rows",
        tuple(r.run_id for r in runs[:5]),
    )


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
