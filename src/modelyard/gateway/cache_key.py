"""The response cache's key: a SHA-256 over canonical JSON of everything that shapes an answer.

It covers the tenant (team, else key), the served version's digest (never the alias), the
catalog's generation counter (any catalog change — a stage, an advisory, an alias — starts
a fresh key space), the endpoint, the prompts exactly as the engine gets them (parts with
their ``special`` flags and message fields), every sampling parameter, ``n`` and
``max_tokens``, and the rest of the request body but for what cannot change the answer
(the model's name, which the digest replaces; ``stream`` and its options, which only change
the framing; ``user``; the raw ``messages`` / ``prompt``, which the rendered prompts stand
for). A parameter the gateway learns later is in the key without a change here.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

from modelyard.engines.base import Prompt, SamplingParams
from modelyard.gateway.pipeline import GenerationCall

KEY_VERSION = 1
"""Bumped when the key's layout changes (old entries then simply miss)."""
NOT_IN_KEY = frozenset({"model", "stream", "stream_options", "user", "messages", "prompt"})
"""Body fields that cannot change the answer, or that the rendered prompts stand for."""


def is_deterministic(params: SamplingParams) -> bool:
    """Only these answers are stored: greedy sampling, or an explicit seed."""
    return params.temperature == 0 or params.seed is not None


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data, bytes and tuples included."""
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _prompt(prompt: Prompt) -> Any:
    if isinstance(prompt, str):
        return prompt
    return [[type(part).__name__, _plain(dataclasses.asdict(part))] for part in prompt]


def key_material(call: GenerationCall, tenant: str, catalog_generation: int) -> dict[str, Any]:
    """What the key hashes (exposed for tests and for debugging a miss)."""
    body = {k: v for k, v in call.body.items() if k not in NOT_IN_KEY}
    return {
        "v": KEY_VERSION,
        "tenant": tenant,
        "digest": call.served.version.digest,
        "catalog_generation": catalog_generation,
        "endpoint": call.endpoint,
        "prompts": [_prompt(p) for p in call.prompts],
        "params": _plain(dataclasses.asdict(call.params)),
        "n": call.n,
        "max_tokens": call.max_tokens,
        "body": _plain(body),
    }


def cache_key(call: GenerationCall, tenant: str, catalog_generation: int) -> str:
    material = key_material(call, tenant, catalog_generation)
    canonical = json.dumps(
        material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
