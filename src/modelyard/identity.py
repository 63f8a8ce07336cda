"""Who is acting: the operating-system user, recorded as ``created_by`` and audit actor."""

from __future__ import annotations

import getpass
import os


def current_user() -> str:
    """The login name of this process's user (``uid:N`` when it has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
