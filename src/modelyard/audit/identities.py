"""People's identifiers in audit records: pseudonyms in the chained columns, names sealed.

A key name can be a person's name (``anna-schmidt``). The chain hash covers every column,
so a name stored in clear could never be removed without breaking ``audit verify``.
Instead, a record stores for each identifier — the acting key (``actor``) and a key an event
is about (``target`` ``key:NAME``) — the pseudonym ``~<id>`` of that identifier's subject
key (``audit_subject_keys``; ``id`` is random, not derived from the name), and the name
itself sealed under that key in ``details["sealed"]`` (AES-256-GCM, bound to record and
field). Readers open the seal; erasure deletes the key, and every record that named the
person keeps a verifiable hash but no longer says who. The same key seals the texts whose
data subject the identifier is, so one key row is everything to destroy.

Records written before this scheme carry names in clear; erasure reports them
(``legacy_clear``) instead of silently claiming they were erased.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from modelyard.audit import cipher

PSEUDONYM = "~"
KEY_TARGET = "key:"
SEALED = "sealed"
ERASED = "[erased]"
IDENTITY_KEYS = frozenset({"actor", "user", "owner", "created_by"})
"""Keys inside ``details`` (at any depth) whose string values name a person or a key."""

KeyFor = Callable[[str], tuple[str, str]]
"""An identifier → ``(subject id, key)`` of its subject key (made on first use)."""


def seal(
    seq: int,
    kind: str,
    actor: str | None,
    target: str | None,
    details: dict[str, Any],
    key_for: KeyFor,
) -> tuple[str | None, str | None, dict[str, Any]]:
    """``(actor, target, details)`` as stored: each identifier replaced by its pseudonym,
    the names sealed in ``details["sealed"]`` (field → token)."""
    sealed: dict[str, str] = {}

    def put(name: str, field: str) -> str:
        subject_id, key = key_for(name)
        sealed[field] = cipher.encrypt(key, name, f"{seq}:{field}")
        return pseudonym(subject_id)

    if actor is not None:
        actor = put(actor, "actor")
    if kind == "event" and target is not None and target.startswith(KEY_TARGET):
        target = KEY_TARGET + put(target[len(KEY_TARGET) :], "target")

    def walk(value: Any, path: list[str | int]) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in IDENTITY_KEYS and isinstance(v, str) and v:
                    out[k] = put(v, json.dumps([*path, k]))
                else:
                    out[k] = walk(v, [*path, k])
            return out
        if isinstance(value, list):
            return [walk(v, [*path, i]) for i, v in enumerate(value)]
        return value

    stored = walk({k: v for k, v in details.items() if k != SEALED}, [])
    if sealed:
        stored[SEALED] = sealed
    return actor, target, stored


def pseudonym(subject_id: str) -> str:
    return PSEUDONYM + subject_id


def subject_of(pseudonymous: str | None) -> str | None:
    """The subject id inside ``~<id>`` or ``key:~<id>``; None for anything else."""
    if pseudonymous is None:
        return None
    if pseudonymous.startswith(KEY_TARGET):
        pseudonymous = pseudonymous[len(KEY_TARGET) :]
    return pseudonymous[1:] if pseudonymous.startswith(PSEUDONYM) else None


def storable(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8 (a lone surrogate from a JSON
    ``\\ud800`` escape becomes the visible text ``\\ud800``): such a request is recorded,
    not turned into an unrecorded 500."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def reveal(
    seq: int, actor: str | None, target: str | None, details: dict[str, Any], keys: dict[str, str]
) -> tuple[str | None, str | None, dict[str, Any]]:
    """``(actor, target, details)`` as people read them: seals opened with ``keys``
    (subject id → key), ``[erased]`` where the key is gone."""
    sealed = details.get(SEALED) if isinstance(details, dict) else None
    if not isinstance(sealed, dict):
        return actor, target, details
    shown = {k: v for k, v in details.items() if k != SEALED}

    def open_(value: str | None, field: str) -> str | None:
        subject = subject_of(value)
        token = sealed.get(field)
        if subject is None or not isinstance(token, str) or value is None:
            return value
        key = keys.get(subject)
        plain = cipher.decrypt(key, token, f"{seq}:{field}") if key is not None else None
        name = ERASED if plain is None else plain
        return KEY_TARGET + name if value.startswith(KEY_TARGET) else name

    for field in sealed:
        if field.startswith("["):
            _restore(shown, json.loads(field), field, open_)
    return open_(actor, "actor"), open_(target, "target"), shown


def _restore(
    details: dict[str, Any],
    path: list[Any],
    field: str,
    open_: Callable[[str | None, str], str | None],
) -> None:
    """Replace the pseudonym at ``path`` (copying the containers on the way) by its name."""
    node: Any = details
    for step in path[:-1]:
        if isinstance(node, list):
            child = node[step] if isinstance(step, int) and step < len(node) else None
        else:
            child = node.get(step)
        if isinstance(child, dict):
            child = dict(child)
        elif isinstance(child, list):
            child = list(child)
        else:
            return
        node[step] = child
        node = child
    last = path[-1]
    if isinstance(node, dict) and isinstance(node.get(last), str):
        node[last] = open_(node[last], field)
