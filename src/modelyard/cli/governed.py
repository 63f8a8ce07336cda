"""What the lifecycle command groups share: who acts, and the lifecycle service."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelyard.cli.runtime import Runtime
from modelyard.errors import InvalidInput

if TYPE_CHECKING:  # the service pulls in the database layer: imported when it is made
    from modelyard.catalog.promotion import Lifecycle

ACTOR_HELP = (
    "Admin only: act in this person's name. Recorded as an impersonation "
    "('NAME (impersonated by YOU)'), which never satisfies a four-eyes gate."
)


ACTOR_OPTION = typer.Option(None, "--actor", help=ACTOR_HELP)
POLICY_OPTION = typer.Option(
    None, "--policy", help="Policy file (default: modelyard.toml or policy.yaml in the home)."
)


def actor_of(ctx: typer.Context, action: str, actor: str | None = None) -> str:
    """Who this command acts as, once ``action`` is checked against the operator's roles:
    the operator logged in with ``modelyard login``, else the OS user (``os:NAME``)."""
    if actor is not None and not actor.strip():
        raise InvalidInput("--actor is empty", param="actor")
    runtime: Runtime = ctx.obj
    return runtime.acting(action, actor.strip() if actor else None)


def lifecycle(runtime: Runtime, policy: Path | None = None) -> Lifecycle:
    from modelyard.catalog.promotion import Lifecycle
    from modelyard.governance.policy import load_policy

    return Lifecycle(runtime.registry, runtime.settings, load_policy(runtime.settings, policy))


def parse_day(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} takes a date as YYYY-MM-DD, not {text!r}") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
