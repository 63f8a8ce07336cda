"""Model and alias names: what is allowed and how a default name is derived."""

from __future__ import annotations

import re

from modelyard.errors import InvalidInput

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def validate_name(name: str, *, what: str = "model name") -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"invalid {what} {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )
    return name


def derive_name(stem: str) -> str:
    """A valid name from a file or directory name.

    ``Llama-3.2-1B.Q4_K_M`` → ``llama-3.2-1b.q4_k_m``.
    """
    candidate = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")[:64]
    return validate_name(candidate)
