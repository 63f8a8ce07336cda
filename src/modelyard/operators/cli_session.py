"""Who runs a CLI command: the operator logged in with ``modelyard login``, else the OS user.

The login token lives in ``MODELYARD_OPERATOR_TOKEN`` or in a file of the home that only
this OS user may read (``<home>/operator-sessions/<uid>``, mode 0600). A token that has
expired or was revoked is an error, not a silent fall back to the OS user.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelyard.atomic_write import write_text
from modelyard.config import Settings
from modelyard.errors import Unauthorized
from modelyard.identity import current_user
from modelyard.operators.principal import Operator, os_operator
from modelyard.operators.sessions import OperatorSessions

TOKEN_ENV = "MODELYARD_OPERATOR_TOKEN"


def token_file(settings: Settings) -> Path:
    return settings.home / "operator-sessions" / str(os.getuid())


def saved_token(settings: Settings) -> str | None:
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    path = token_file(settings)
    try:
        with path.open() as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                # the folder is shared: a file planted by someone else is never trusted
                raise Unauthorized(
                    f"{path} is not this user's private login token (owner or mode changed); "
                    "remove it and run `modelyard login` again",
                    code="login_token_untrusted",
                )
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


def save_token(settings: Settings, token: str) -> Path:
    path = token_file(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_uid == os.getuid():
        os.chmod(path.parent, 0o1733)  # like /tmp: each OS user writes their own file only
    write_text(path, token + "\n", mode=0o600)
    return path


def forget_token(settings: Settings) -> bool:
    try:
        token_file(settings).unlink()
    except FileNotFoundError:
        return False
    return True


def cli_operator(settings: Settings, sessions: OperatorSessions) -> Operator:
    """The logged-in operator, or the OS user marked ``os:`` when nobody is logged in."""
    token = saved_token(settings)
    if token is None:
        return os_operator(current_user())
    active = sessions.resolve(token)
    if active is None:
        raise Unauthorized(
            "your operator login has expired or was revoked: run `modelyard login` again, "
            "or `modelyard logout` to act as the OS user",
            code="login_expired",
        )
    return active.operator
