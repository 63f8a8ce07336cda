"""Ask an upstream who it is: the model id it serves and, where it says, its weights' digest.

``GET /v1/models`` (every OpenAI-compatible server) gives the model ids and, depending on the
engine, details: llama-server's ``meta`` (parameters, size, vocabulary, trained context),
vLLM's ``root`` and ``max_model_len``. llama-server's ``GET /props`` adds the chat template
(recorded as its SHA-256) and the context per slot; Ollama's ``GET /api/tags`` the digest of
the model's weights. No OpenAI-compatible route reports a weights digest in general: when
none does, the identity says so (``weights_digest: null`` and where it was looked for).

The replicas of one endpoint must report the same identity; per-replica details (context per
slot, build) are kept apart and do not enter the digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import httpx

from modelyard.engines.remote_engine import scrub
from modelyard.errors import InvalidInput, Unavailable

_META_KEYS = ("n_params", "size", "n_vocab", "n_ctx_train", "n_embd", "vocab_type")
NOT_EXPOSED = "not exposed by the upstream (looked at /v1/models, /props, /api/tags)"


async def _get_json(client: httpx.AsyncClient, url: str, secret: str | None) -> Any:
    """The JSON at ``url``, or None when the route is absent or not JSON."""
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"{url} is not answering ({type(exc).__name__})", code="endpoint_unreachable"
        ) from exc
    if 300 <= response.status_code < 400:
        raise InvalidInput(
            f"{url} answered with a redirect (HTTP {response.status_code}); redirects are not "
            "followed: give the URL the upstream is served at",
            param="url",
        )
    if response.status_code in (401, 403):
        raise InvalidInput(
            f"{url} refused the credentials (HTTP {response.status_code}): "
            + scrub(response.text[:200], secret),
            param="api_key_env",
        )
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _model_entry(listing: Any, served_model: str, url: str) -> Mapping[str, Any]:
    data = listing.get("data") if isinstance(listing, Mapping) else None
    if not isinstance(data, list):
        raise InvalidInput(
            f"{url}/v1/models did not answer an OpenAI model list: is it an "
            "OpenAI-compatible server?",
            param="url",
        )
    ids = [str(m.get("id")) for m in data if isinstance(m, Mapping)]
    for entry in data:
        if isinstance(entry, Mapping) and entry.get("id") == served_model:
            return entry
    raise InvalidInput(
        f"{url} does not serve {served_model!r} (it serves: {', '.join(ids) or 'nothing'})",
        param="served_model",
    )


def _weights_digest(tags: Any, served_model: str) -> str | None:
    models = tags.get("models") if isinstance(tags, Mapping) else None
    for model in models if isinstance(models, list) else []:
        if isinstance(model, Mapping) and served_model in (model.get("name"), model.get("model")):
            digest = model.get("digest")
            return f"sha256:{digest}" if isinstance(digest, str) and digest else None
    return None


async def probe_identity(
    client: httpx.AsyncClient, base: str, served_model: str, secret: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(identity, replica details)`` of the upstream at ``base`` for ``served_model``."""
    entry = _model_entry(await _get_json(client, base + "/v1/models", secret), served_model, base)
    raw_meta = entry.get("meta")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    identity: dict[str, Any] = {
        "model_id": str(entry.get("id")),
        "owned_by": entry.get("owned_by"),
        "root": entry.get("root"),
        "max_model_len": entry.get("max_model_len"),
        "meta": {k: meta[k] for k in _META_KEYS if k in meta},
    }
    details: dict[str, Any] = {"url": base}
    props = await _get_json(client, base + "/props", secret)
    if isinstance(props, Mapping):
        template = props.get("chat_template")
        if isinstance(template, str) and template:
            identity["chat_template_sha256"] = hashlib.sha256(template.encode()).hexdigest()
        settings = props.get("default_generation_settings")
        if isinstance(settings, Mapping) and isinstance(settings.get("n_ctx"), int):
            details["context_length"] = settings["n_ctx"]
        if isinstance(props.get("build_info"), str):
            details["build"] = props["build_info"]
    digest = _weights_digest(await _get_json(client, base + "/api/tags", secret), served_model)
    identity["weights_digest"] = digest
    identity["weights_digest_source"] = "ollama /api/tags" if digest else NOT_EXPOSED
    return identity, details


def same_identity(found: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The one identity all replicas reported, or InvalidInput naming where they differ."""
    first_url, first = found[0]
    for url, identity in found[1:]:
        differ = sorted(k for k in {*first, *identity} if first.get(k) != identity.get(k))
        if differ:
            raise InvalidInput(
                f"the replicas disagree on the model's identity ({', '.join(differ)}): "
                f"{first_url} and {url} do not serve the same model",
                param="url",
            )
    return first


def context_length(identity: Mapping[str, Any], details: list[dict[str, Any]]) -> int | None:
    """The context a request may use: the smallest a replica reports."""
    found = [int(d["context_length"]) for d in details if isinstance(d.get("context_length"), int)]
    if found:
        return min(found)
    for value in (identity.get("max_model_len"), identity.get("meta", {}).get("n_ctx_train")):
        if isinstance(value, int) and value > 0:
            return value
    return None
