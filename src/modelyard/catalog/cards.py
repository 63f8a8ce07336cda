"""Model cards: one Markdown page per version, written from what the catalog knows.

Provenance, licence, hashes, lineage, the intended use (the one field people edit), eval
and bias results (from ``modelyard.evaluate.evidence``), advisories and the stage history.
"""

from __future__ import annotations

from typing import Any

from modelyard.catalog.advisories import Advisories
from modelyard.catalog.lifecycle import StageInfo, Transition
from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.records import ModelVersion
from modelyard.evaluate.evidence import EvalEvidence, evidence_for


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


FEDERATED_TABLES = ("sites", "participation")
"""Lineage keys of a federated version shown as tables of their own."""


def _federated(lineage: dict[str, Any]) -> list[str]:
    """The sites that trained a federated version: what each reported (its dataset's
    SHA-256 and example count, never its rows) and who took part in each round."""
    if lineage.get("method") != "federated-lora":
        return []
    out = ["", "### Federated training", ""]
    out += _table(
        ["site", "dataset sha256", "examples", "rounds joined"],
        [
            [s.get("site"), s.get("dataset_sha256"), s.get("examples"), s.get("rounds")]
            for s in lineage.get("sites", [])
        ],
    )
    out += [""]
    out += _table(
        ["round", "replied", "missing"],
        [
            [p.get("round"), ", ".join(p.get("replied", [])), ", ".join(p.get("missing", []))]
            for p in lineage.get("participation", [])
        ],
    )
    return out


def render_card(
    version: ModelVersion,
    info: StageInfo,
    history: list[Transition],
    evidence: list[EvalEvidence],
    advisories: list[dict[str, Any]],
) -> str:
    meta = version.metadata
    out = [f"# Model card: {version.ref}", ""]
    out += _table(
        ["field", "value"],
        [
            ["model", version.ref],
            ["stage", info.stage.value],
            ["sunset", info.sunset_at.date().isoformat() if info.sunset_at else None],
            ["replacement", info.replacement],
            ["licence", meta.get("license", "unknown")],
            ["format", version.format],
            ["architecture", meta.get("architecture")],
            ["parameters", f"{meta['parameters']:,}" if meta.get("parameters") else None],
            ["quantization", meta.get("quantization")],
            ["context length", meta.get("context_length")],
            ["size (bytes)", f"{version.size_bytes:,}"],
            ["digest", f"sha256:{version.digest}"],
        ],
    )
    out += ["", "## Provenance", ""]
    provenance: list[list[Any]] = [
        ["source", version.source_path],
        ["origin", version.origin],
        ["parent", version.parent],
        ["created by", version.created_by],
        ["created at", version.created_at.isoformat(timespec="seconds")],
    ]
    provenance += [
        [f"lineage: {k}", v]
        for k, v in sorted(version.lineage.items())
        if k != "origin" and k not in FEDERATED_TABLES
    ]
    out += _table(["field", "value"], provenance)
    out += _federated(version.lineage)
    out += ["", "### Files", ""]
    out += _table(
        ["path", "sha256", "bytes"], [[f.path, f.sha256, f.size_bytes] for f in version.files]
    )
    out += ["", "## Intended use", ""]
    out.append(
        info.intended_use
        or f'_Not written yet: `modelyard models card {version.ref} --intended-use "…"`._'
    )
    evals = [e for e in evidence if e.kind == "eval"]
    biases = [e for e in evidence if e.kind == "bias"]
    out += ["", "## Evaluation results", ""]
    if evals:
        out += _table(
            ["suite", "metric", "score", "95% CI", "rows", "run", "finished"],
            [
                [
                    e.suite,
                    e.metric,
                    f"{e.score:.4g}",
                    f"{e.ci_low:.3g} to {e.ci_high:.3g}"
                    if e.ci_low is not None and e.ci_high is not None
                    else "",
                    e.rows,
                    e.run_id,
                    e.finished_at.isoformat(timespec="seconds"),
                ]
                for e in evals
            ],
        )
    else:
        out.append("_No finished evaluation runs._")
    out += ["", "## Bias probes", ""]
    if biases:
        out += _table(
            ["probe", "gap (lower is better)", "rows", "run", "finished"],
            [
                [
                    e.metric,
                    f"{e.score:.4g}",
                    e.rows,
                    e.run_id,
                    e.finished_at.isoformat(timespec="seconds"),
                ]
                for e in biases
            ],
        )
    else:
        out.append("_No finished bias probes._")
    out += ["", "## Advisories", ""]
    if advisories:
        out += _table(
            ["id", "severity", "action", "summary", "status"],
            [
                [
                    a["id"],
                    a["severity"],
                    a["action"],
                    a["summary"],
                    "active" if a["active"] else "withdrawn",
                ]
                for a in advisories
            ],
        )
    else:
        out.append("_None._")
    out += ["", "## Stage history", ""]
    out += _table(
        ["when", "from", "to", "actor", "reason", "evidence"],
        [
            [
                t.at.isoformat(timespec="seconds"),
                t.from_stage or "",
                t.to_stage,
                t.actor,
                t.reason,
                ", ".join(t.evidence),
            ]
            for t in history
            if t.ref == version.ref
        ],
    )
    return "\n".join(out) + "\n"


def card_for(lifecycle: Lifecycle, ref: str) -> str:
    """Gather everything the card shows for ``ref``."""
    version, info = lifecycle.stage(ref)
    history = lifecycle.history(version.name)
    evidence = evidence_for(lifecycle.registry.db, version.name, version.version)
    advisories = [
        a.to_json()
        for a in Advisories(lifecycle.registry).list(version.ref, include_withdrawn=True)
    ]
    return render_card(version, info, history, evidence, advisories)
