"""Secrets out of the gateway's logs: query-string credentials, bearer tokens, API keys.

Clients put keys where they should not (``/v1/models?api_key=...``), and uvicorn's access log
prints each request line verbatim. :class:`RedactingFilter` sits on every handler of the
server's logging config (:func:`logging_config`): it rewrites the value of any query
parameter whose name says it is a credential, any query value that looks like a key or token,
and anything shaped like ``Bearer <token>``, ``Authorization: <value>`` or a modelyard key, in
any record, before the record is formatted. Request headers are never logged by the gateway;
the filter is the backstop for a message that quotes one.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"

_SECRET_NAME = re.compile(
    r"key|token|secret|passw|pwd|auth|signature|^sig$|credential|session|cookie", re.IGNORECASE
)
"""Query parameter names whose values are credentials (api_key, access_token, password...)."""

_SECRET_VALUE = re.compile(
    r"^(?:my-[0-9a-f]{12}-\S+|sk-\S{8,}|eyJ[\w-]{8,}\.\S*|[A-Za-z0-9_\-+/=.~]{32,})$"
)
"""Query values that look like keys or tokens whatever their parameter is called: modelyard
keys, ``sk-`` keys, JWTs, long opaque strings."""

_IN_TEXT = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+"), rf"\1 {REDACTED}"),
    (
        re.compile(r"(?i)\b(authorization|x-api-key|api-key)(\"?\s*[:=]\s*\"?)[^\s\"',;]+"),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"\bmy-[0-9a-f]{12}-[^\s\"',;&]+"), REDACTED),
)


def redact_query(query: str) -> str:
    """``query`` (the part after ``?``) with credential values replaced."""
    out = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        decoded_name = unquote_plus(name)
        if eq and (_SECRET_NAME.search(decoded_name) or _SECRET_VALUE.match(unquote_plus(value))):
            out.append(f"{name}={REDACTED}")
        else:
            out.append(pair)
    return "&".join(out)


def redact_target(target: str) -> str:
    """A request target (path and query) with credentials in its query string replaced."""
    path, question, query = target.partition("?")
    if not question:
        return redact_text(target)
    return redact_text(path) + "?" + redact_query(query)


def redact_text(text: str) -> str:
    """Free text with bearer tokens, Authorization values and modelyard keys replaced."""
    for pattern, replacement in _IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no credential reaches a handler's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, target, version, status = args
            record.args = (client, method, redact_target(str(target)), version, status)
            return True
        message = record.getMessage()
        cleaned = redact_text(message)
        if "?" in cleaned:
            cleaned = re.sub(r"(?<=\?)[^\s\"']+", lambda m: redact_query(m.group(0)), cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def logging_config() -> dict[str, Any]:
    """uvicorn's logging config with :class:`RedactingFilter` on every handler, and the root
    logger (modelyard's own loggers) sent through a redacting handler too."""
    import uvicorn.config

    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": f"{__name__}.RedactingFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    config.setdefault("root", {"handlers": ["default"], "level": "WARNING"})
    return config
