"""Parse untrusted JSON (configs, tokenizer files, safetensors headers) with bounds.

Python's parser raises ``RecursionError`` on deep nesting, ``ValueError`` on integers past
its digit limit, silently yields ``inf``/``nan`` and may exhaust memory on a huge document.
:func:`loads` turns every one of those into :class:`~modelyard.errors.UnsafeModel` with a
message naming the file, bounds the size before parsing and the nesting depth after.
"""

from __future__ import annotations

import json
import math
from typing import Any

from modelyard.errors import UnsafeModel

MAX_DEPTH = 64
MAX_INT_DIGITS = 40
"""Larger than any real count or offset (2**64 has 20 digits); far below Python's limit."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:32]} is out of range")
    return value


def _parse_constant(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


def loads(raw: bytes | str, *, what: str, max_bytes: int) -> Any:
    """The parsed value of ``raw``, or :class:`UnsafeModel` saying why ``what`` is refused."""
    if len(raw) > max_bytes:
        raise UnsafeModel(f"refused {what}: {len(raw)} bytes of JSON, more than {max_bytes}")
    try:
        value = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError as exc:
        raise UnsafeModel(f"refused {what}: its JSON is nested too deeply") from exc
    except MemoryError as exc:
        raise UnsafeModel(f"refused {what}: its JSON needs too much memory") from exc
    except UnicodeDecodeError as exc:
        raise UnsafeModel(
            f"refused {what}: it is not valid JSON (not UTF-8: {exc.reason})"
        ) from exc
    except ValueError as exc:  # json.JSONDecodeError and the parse hooks above
        raise UnsafeModel(f"refused {what}: it is not valid JSON ({_short(exc)})") from exc
    if _depth(value) > MAX_DEPTH:
        raise UnsafeModel(f"refused {what}: its JSON is nested more than {MAX_DEPTH} levels")
    return value


def _short(exc: ValueError) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


def _depth(value: Any) -> int:
    """Nesting depth, computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest
