"""Roles and what each may do: the vocabulary is data, checked on the server for every action.

==========  =================================================================================
viewer      reads the catalog, aliases, advisories, engines, eval reports, usage
operator    viewer + imports, tunes, sets aliases and canaries, raises advisories, proposes
            promotions, places versions below ``production``
approver    viewer + approves or rejects proposals and promotes (policy gates still apply)
auditor     viewer + reads, verifies and exports the audit log and usage
admin       everything: keys, teams, operators, the endpoint allow-list, erasure,
            impersonation
==========  =================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from modelyard.errors import Forbidden, InvalidInput


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Action:
    """Something an operator may be allowed to do, and the roles that allow it."""

    name: str
    roles: frozenset[Role]
    summary: str


_ANYONE = frozenset(Role)
_OPS = frozenset({Role.OPERATOR, Role.ADMIN})
_APPROVE = frozenset({Role.APPROVER, Role.ADMIN})
_AUDIT = frozenset({Role.AUDITOR, Role.ADMIN})
_ADMIN = frozenset({Role.ADMIN})

ACTIONS = MappingProxyType(
    {
        a.name: a
        for a in (
            Action("catalog.read", _ANYONE, "see models, versions, cards, lineage, stages"),
            Action("catalog.change", _OPS, "import, remove, sign, trial-load, set intended use"),
            Action("aliases.change", _OPS, "set, weight, roll back and remove aliases"),
            Action("advisories.change", _OPS, "raise and withdraw advisories"),
            Action("lifecycle.propose", _OPS, "propose a promotion for a second person"),
            Action("lifecycle.promote", _APPROVE, "promote, approve or reject a proposal"),
            Action("engines.read", _ANYONE, "see loaded workers, slots and queues"),
            Action("usage.read", _ANYONE, "see usage and cost dashboards"),
            Action("usage.export", _AUDIT, "export usage as CSV"),
            Action("evals.read", _ANYONE, "see eval, bias and pilot reports"),
            Action("evals.run", _OPS, "run evals, bias probes, pilots, tunes and quantizations"),
            Action("audit.read", _AUDIT, "browse, verify and export the audit log"),
            Action("audit.erase", _ADMIN, "erase a data subject"),
            Action("keys.manage", _ADMIN, "create and revoke keys, set limits and budgets"),
            Action("teams.manage", _ADMIN, "create, change and delete teams"),
            Action("operators.manage", _ADMIN, "create operators, set roles, reset passwords"),
            Action(
                "endpoints.manage",
                _ADMIN,
                "allow and deny the hosts and networks remote endpoints may reach",
            ),
            Action("operators.impersonate", _ADMIN, "act in another operator's name (audited)"),
        )
    }
)
"""Every action the console, the CLI and the admin API check, by name."""


def parse_roles(text: str | Iterable[str]) -> frozenset[Role]:
    """``"operator,approver"`` (or a list) as roles; InvalidInput naming an unknown one."""
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t]
    unknown = [t for t in items if t not in Role.__members__.values()]
    if unknown:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(
            f"unknown role(s) {', '.join(unknown)}; roles are {known}", param="roles"
        )
    if not items:
        raise InvalidInput("at least one role is needed", param="roles")
    return frozenset(Role(t) for t in items)


def allows(roles: Iterable[Role], action: str) -> bool:
    """Whether any of ``roles`` allows ``action`` (KeyError for an action not in ACTIONS)."""
    return bool(ACTIONS[action].roles & set(roles))


def require(roles: Iterable[Role], action: str, *, who: str) -> None:
    """Forbidden unless one of ``roles`` allows ``action``."""
    if not allows(roles, action):
        needed = " or ".join(sorted(r.value for r in ACTIONS[action].roles))
        raise Forbidden(
            f"{who} may not {ACTIONS[action].summary} (needs role {needed})",
            code="role_required",
        )


def sorted_roles(roles: Iterable[Role]) -> list[str]:
    order = list(Role)
    return [r.value for r in sorted(set(roles), key=order.index)]
