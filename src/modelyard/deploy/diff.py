"""What changed between two deployment manifests: models, aliases, runtime, policy, limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODEL_FIELDS = ("digest", "stage", "sunset_at", "replacement", "engine", "licence", "advisories")


@dataclass(frozen=True)
class Change:
    op: str
    """``+`` added, ``-`` removed, ``~`` changed."""
    section: str
    key: str
    before: Any = None
    after: Any = None

    def describe(self) -> str:
        if self.op == "+":
            return f"+ {self.section} {self.key}: {_short(self.after)}"
        if self.op == "-":
            return f"- {self.section} {self.key}: {_short(self.before)}"
        return f"~ {self.section} {self.key}: {_short(self.before)} → {_short(self.after)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "section": self.section,
            "key": self.key,
            "before": self.before,
            "after": self.after,
        }


def _short(value: Any) -> str:
    if isinstance(value, dict) and "stage" in value and "digest" in value:
        return f"{value['stage']} sha256:{str(value['digest'])[:12]}"
    if isinstance(value, dict) and "target" in value:
        canary = value.get("canary")
        return str(value["target"]) + (
            f" + canary {canary} {value.get('canary_weight')}%" if canary else ""
        )
    return str(value)


def _mapping(before: dict[str, Any], after: dict[str, Any], section: str) -> list[Change]:
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            changes.append(Change("-", section, key, before[key]))
        elif key not in before:
            changes.append(Change("+", section, key, after=after[key]))
        elif before[key] != after[key]:
            changes.append(Change("~", section, key, before[key], after[key]))
    return changes


def diff_manifests(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    changes: list[Change] = []
    models_a, models_b = a.get("models") or {}, b.get("models") or {}
    for ref in sorted(set(models_a) | set(models_b)):
        if ref not in models_b:
            changes.append(Change("-", "model", ref, models_a[ref]))
        elif ref not in models_a:
            changes.append(Change("+", "model", ref, after=models_b[ref]))
        else:
            for name in MODEL_FIELDS:
                old, new = models_a[ref].get(name), models_b[ref].get(name)
                if old != new:
                    changes.append(Change("~", "model", f"{ref} {name}", old, new))
    changes += _mapping(a.get("aliases") or {}, b.get("aliases") or {}, "alias")
    runtime_a, runtime_b = a.get("runtime") or {}, b.get("runtime") or {}
    flat_a = {
        **runtime_a.get("libraries", {}),
        **{k: v for k, v in runtime_a.items() if k != "libraries"},
    }
    flat_b = {
        **runtime_b.get("libraries", {}),
        **{k: v for k, v in runtime_b.items() if k != "libraries"},
    }
    changes += _mapping(flat_a, flat_b, "runtime")
    policy_a, policy_b = a.get("policy") or {}, b.get("policy") or {}
    if policy_a.get("rules") != policy_b.get("rules"):
        changes.append(
            Change("~", "policy", "rules", policy_a.get("sha256"), policy_b.get("sha256"))
        )
    changes += _mapping(a.get("limits") or {}, b.get("limits") or {}, "limit")
    return changes
