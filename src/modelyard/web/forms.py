"""Reading HTML form fields into the values the services take, with the API's errors.

A form sends every field as text, and an empty field as ``""``: these turn that into
None or a number, raising the same :class:`~modelyard.errors.InvalidInput` (param and code
``invalid_request``) as the JSON API's body validation does for a bad value.
"""

from __future__ import annotations

import math

from modelyard.errors import InvalidInput


def optional(text: str | None) -> str | None:
    """The field's text, or None when it was left empty."""
    value = (text or "").strip()
    return value or None


def number(text: str | None, param: str) -> float | None:
    """A finite number, or None for an empty field."""
    value = optional(text)
    if value is None:
        return None
    try:
        parsed = float(value)
    except ValueError:
        parsed = math.nan
    if not math.isfinite(parsed):
        raise InvalidInput(
            f"invalid request: {param}: Input should be a valid number, not {value!r}",
            param=param,
            code="invalid_request",
        )
    return parsed
