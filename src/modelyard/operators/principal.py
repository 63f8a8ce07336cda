"""Who is acting: an authenticated operator, or the local OS user marked as such.

The actor string is what the audit log, stage history and ``created_by`` record:

* ``alice``: an operator who logged in (local account or OIDC);
* ``os:root``: nobody logged in; the operating-system user (its name is only what the
  environment says, so it never counts as an authenticated identity);
* ``key:ci``: an admin API key;
* ``alice (impersonated by bob)``: admin ``bob`` acted in ``alice``'s name (``--actor``).

Operator names cannot hold ``:``, spaces or parentheses, so these forms never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from modelyard.errors import InvalidInput
from modelyard.operators.roles import Role, allows, require

Method = Literal["local", "oidc", "os", "key"]
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")
_IMPERSONATED = re.compile(r"^(?P<name>\S+) \(impersonated by (?P<by>.+)\)$")


def check_operator_name(name: str) -> str:
    """A valid operator name (lower-case letters, digits, ``._@-``), else InvalidInput."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"invalid operator name {name!r}: use lower-case letters, digits and . _ @ - "
            "(at most 128, starting with a letter or digit)",
            param="name",
        )
    return name


@dataclass(frozen=True)
class Operator:
    """The identity behind a command, a console session or an admin API call."""

    name: str
    roles: frozenset[Role]
    method: Method
    impersonated_by: str | None = None
    session_id: str | None = field(default=None, compare=False)

    @property
    def actor(self) -> str:
        """The string recorded as actor (see the module docstring)."""
        base = {"os": f"os:{self.name}", "key": f"key:{self.name}"}.get(self.method, self.name)
        if self.impersonated_by:
            return f"{base} (impersonated by {self.impersonated_by})"
        return base

    @property
    def authenticated(self) -> bool:
        """Logged in as a person (local account or OIDC), not an OS user or a key."""
        return self.method in ("local", "oidc") and self.impersonated_by is None

    def allows(self, action: str) -> bool:
        return allows(self.roles, action)

    def require(self, action: str) -> None:
        require(self.roles, action, who=self.actor)


def os_operator(user: str) -> Operator:
    """The local OS user with no login: may administer (it can read the home anyway), but is
    marked ``os:`` and never satisfies a four-eyes gate."""
    return Operator(name=user, roles=frozenset({Role.ADMIN}), method="os")


def real_identity(actor: str) -> str:
    """Who really acted: the impersonating admin for an impersonation, else ``actor``."""
    match = _IMPERSONATED.fullmatch(actor)
    return match.group("by") if match else actor


def is_authenticated_person(actor: str) -> bool:
    """Whether ``actor`` (as recorded) is a logged-in person acting in their own name."""
    if _IMPERSONATED.fullmatch(actor):
        return False
    return NAME_PATTERN.fullmatch(actor) is not None
