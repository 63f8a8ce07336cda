"""Counterfactual bias probes: the same sentence with only the group term changed.

A probe is ``{"category", "template" (with one ``{group}``), "groups": [...]}`` plus either
``"continuation"`` (the likelihood measure: log P(continuation | template with group), per
token) or ``"choices"`` with ``"positive"`` (the outcome measure: the probability the model
gives the positive option, normalised over the options). For each probe the gap is the
largest difference between two groups; a category's score is the mean outcome gap (0-1,
lower is better), or the mean likelihood gap in nats/token when it has no outcome probes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Any

from modelyard.engines.scoring import Scorer
from modelyard.errors import InvalidInput
from modelyard.evaluate.tasks import option_text

CATEGORIES = ("gender", "ethnicity", "nationality", "age", "religion", "disability")


@dataclass(frozen=True)
class Probe:
    id: str
    category: str
    template: str
    groups: tuple[str, ...]
    continuation: str | None
    choices: tuple[str, ...] | None
    positive: int

    def text(self, group: str) -> str:
        return self.template.replace("{group}", group)


def _parse(data: Any, where: str) -> Probe:
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: a probe must be a JSON object")
    template, groups = data.get("template"), data.get("groups")
    if not isinstance(template, str) or template.count("{group}") != 1:
        raise InvalidInput(f"{where}: 'template' must contain '{{group}}' exactly once")
    if (
        not isinstance(groups, list)
        or len(groups) < 2
        or not all(isinstance(g, str) and g for g in groups)
    ):
        raise InvalidInput(f"{where}: 'groups' must list at least two group terms")
    continuation, choices = data.get("continuation"), data.get("choices")
    if continuation is None and choices is None:
        raise InvalidInput(f"{where}: a probe needs 'continuation' or 'choices'")
    if choices is not None and (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) for c in choices)
    ):
        raise InvalidInput(f"{where}: 'choices' must list at least two options")
    positive = data.get("positive", 0)
    if choices is not None and not (isinstance(positive, int) and 0 <= positive < len(choices)):
        raise InvalidInput(f"{where}: 'positive' must be the index of one of the choices")
    return Probe(
        id=str(data.get("id") or where),
        category=str(data.get("category") or "custom"),
        template=template,
        groups=tuple(groups),
        continuation=continuation if isinstance(continuation, str) else None,
        choices=tuple(choices) if choices is not None else None,
        positive=int(positive),
    )


def load_probes(path: Path) -> list[Probe]:
    if not path.is_file():
        raise InvalidInput(f"no such probe file: {path}")
    probes: list[Probe] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            probes.append(_parse(json.loads(line), where))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not valid JSON ({exc.msg})") from exc
    if not probes:
        raise InvalidInput(f"{path} has no probes")
    return probes


def builtin_probe_path(category: str) -> Path:
    """The probe suite the project ships for a category."""
    if category not in CATEGORIES:
        raise InvalidInput(
            f"unknown bias category {category!r}; choose from: {', '.join(CATEGORIES)}",
            param="category",
        )
    return Path(str(resources.files("modelyard.evaluate") / "probes" / f"{category}.jsonl"))


def measure(scorer: Scorer, probe: Probe) -> dict[str, Any]:
    """Both measures for one probe, per group, with the worst pair."""
    per_group: dict[str, dict[str, float]] = {}
    for group in probe.groups:
        context = probe.text(group)
        values: dict[str, float] = {}
        if probe.continuation is not None:
            scored = scorer.loglikelihood(context, probe.continuation)
            values["loglik_per_token"] = scored.logprob / max(scored.tokens, 1)
        if probe.choices is not None:
            logprobs = [
                scorer.loglikelihood(context, option_text(context, c)).logprob
                for c in probe.choices
            ]
            peak = max(logprobs)
            weights = [math.exp(lp - peak) for lp in logprobs]
            values["p_positive"] = weights[probe.positive] / sum(weights)
        per_group[group] = values
    measure_name = "p_positive" if probe.choices is not None else "loglik_per_token"
    pairs = [
        (a, b, per_group[a][measure_name] - per_group[b][measure_name])
        for a, b in combinations(probe.groups, 2)
    ]
    high, low, diff = max(pairs, key=lambda pair: abs(pair[2]))
    if diff < 0:
        high, low, diff = low, high, -diff
    return {
        "probe": probe.id,
        "measure": measure_name,
        "per_group": per_group,
        "gap": diff,
        "favoured": high,
        "disfavoured": low,
        "text": probe.template,
    }


def summarise_category(results: list[dict[str, Any]], *, worst: int = 3) -> dict[str, Any]:
    """A category's score (mean gap), spread between groups, and its worst pairs."""
    outcome = [r for r in results if r["measure"] == "p_positive"]
    likelihood = [r for r in results if r["measure"] == "loglik_per_token"]
    chosen = outcome or likelihood
    measure_name = "p_positive" if outcome else "loglik_per_token"
    group_values: dict[str, list[float]] = {}
    for result in chosen:
        for group, values in result["per_group"].items():
            group_values.setdefault(group, []).append(values[measure_name])
    group_means = {g: sum(v) / len(v) for g, v in group_values.items()}
    ranked = sorted(chosen, key=lambda r: r["gap"], reverse=True)[:worst]
    return {
        "measure": measure_name,
        "score": sum(r["gap"] for r in chosen) / len(chosen),
        "max_gap": max(r["gap"] for r in chosen),
        "likelihood_gap_mean": (
            sum(r["gap"] for r in likelihood) / len(likelihood) if likelihood else None
        ),
        "outcome_gap_mean": sum(r["gap"] for r in outcome) / len(outcome) if outcome else None,
        "group_means": group_means,
        "spread": max(group_means.values()) - min(group_means.values()),
        "worst_pairs": [
            {
                "probe": r["probe"],
                "favoured": r["favoured"],
                "disfavoured": r["disfavoured"],
                "gap": r["gap"],
                "text": r["text"],
            }
            for r in ranked
        ],
        "probes": len(results),
    }


def bias_markdown(model: str, categories: list[tuple[str, float, dict[str, Any]]]) -> str:
    """A Markdown report: one row per category, then each category's worst pairs.

    ``categories`` holds ``(category, score, summary)`` as stored in the ``bias`` runs.
    """
    lines = [
        f"# Bias probes: {model}",
        "",
        "| category | measure | mean gap | max gap | spread | probes | gate |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for category, score, summary in categories:
        passed = summary.get("passed")
        gate = "" if passed is None else ("pass" if passed else "FAIL")
        lines.append(
            f"| {category} | {summary['measure']} | {score:.3f} | {summary['max_gap']:.3f} "
            f"| {summary['spread']:.3f} | {summary['probes']} | {gate} |"
        )
    for category, _score, summary in categories:
        lines += ["", f"## {category}: worst pairs", ""]
        for pair in summary["worst_pairs"]:
            lines.append(
                f"- `{pair['probe']}`: {pair['favoured']} over {pair['disfavoured']} "
                f'by {pair["gap"]:.3f} ({summary["measure"]}) in "{pair["text"]}"'
            )
    lines += [
        "",
        "Gap: the largest difference between two groups on one probe (p_positive: probability "
        "of the positive option, 0-1; loglik_per_token: nats per token). Lower is better. "
        "See docs/evaluation.md for what these probes can and cannot show.",
        "",
    ]
    return "\n".join(lines)
