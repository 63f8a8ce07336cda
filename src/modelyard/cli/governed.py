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

ACTOR_HELP = "Act as this person (default: the OS user); the admin API passes the key's name."


ACTOR_OPTION = typer.Option(None, "--actor", help=ACTOR_HELP)
POLICY_OPTION = typer.Option(
    None, "--policy", help="Policy file (default: modelyard.toml or policy.yaml in the home)."
)


def actor_of(actor: str | None) -> str:
    if actor is not None and not actor.strip():
        raise InvalidInput("--actor is empty", param="actor")
    from modelyard.identity import current_user

    return actor.strip() if actor else current_user()


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
