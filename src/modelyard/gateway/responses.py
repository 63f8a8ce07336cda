"""OpenAI response shapes: ids, choices, log-probabilities."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import TokenLogprob


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


def chat_logprobs(tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": list(t.token_bytes),
                "top_logprobs": [
                    {"token": a.token, "logprob": a.logprob, "bytes": list(a.token_bytes)}
                    for a in t.top
                ],
            }
            for t in tokens
        ],
        "refusal": None,
    }


def completion_logprobs(tokens: Sequence[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    offsets = []
    position = offset
    for t in tokens:
        offsets.append(position)
        position += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{a.token: a.logprob for a in t.top} for t in tokens],
        "text_offset": offsets,
    }


def completion_payload(
    kind: str,
    completion_id: str,
    version: ModelVersion,
    choices: list[dict[str, Any]],
    usage: dict[str, int],
) -> dict[str, Any]:
    """The non-streaming envelope shared by ``chat.completion`` and ``text_completion``."""
    return {
        "id": completion_id,
        "object": kind,
        "created": now(),
        "model": version.ref,
        "system_fingerprint": f"modelyard-{version.digest[:12]}",
        "choices": choices,
        "usage": usage,
    }
