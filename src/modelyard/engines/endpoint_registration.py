"""``modelyard models add-endpoint`` and ``models trial-load`` for endpoint versions.

Registration checks every URL against the allow-list (by name and by every resolved
address), asks each replica who it is (:mod:`modelyard.engines.endpoint_identity`), and
registers one catalog version: format ``endpoint``, origin ``remote``, digest = SHA-256 of
the identity's canonical JSON. The API key, read from an environment variable, is sealed
into its own table in the same transaction as the version and its ``model.import`` record;
it is never logged, printed or recorded.

A trial load of an endpoint version is a live probe: each replica must still report the
recorded identity and answer a 1-token completion. The result is recorded like a local
trial load (``version_trial_loads`` and ``model.trial_load``), which the policy's
``trial_load`` gate reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.names import validate_name
from modelyard.catalog.records import ModelVersion, NewVersion
from modelyard.catalog.registry import Registry
from modelyard.catalog.rows import ref_of
from modelyard.config import Settings
from modelyard.engines.base import Finish, SamplingParams
from modelyard.engines.endpoint_identity import context_length, probe_identity, same_identity
from modelyard.engines.endpoint_store import Credentials, EndpointRules
from modelyard.engines.endpoints import ENDPOINT_FORMAT, REMOTE_ORIGIN, EndpointSpec
from modelyard.engines.remote_engine import ReplicaFailed, UpstreamCall
from modelyard.engines.remote_messages import messages_prompt
from modelyard.engines.safe_transport import SafeTransport, upstream_client
from modelyard.engines.trial_load import Outcome, TrialLoad, store_trial_load
from modelyard.engines.url_policy import (
    AllowList,
    Resolver,
    UpstreamURL,
    check_url,
    parse_upstream_url,
    system_resolve,
)
from modelyard.errors import Conflict, InvalidInput, ModelyardError
from modelyard.store.tables import ModelRow, ModelVersionRow


@dataclass(frozen=True)
class EndpointRequest:
    name: str
    urls: tuple[str, ...]
    served_model: str
    api_key: str | None = None
    licence: str | None = None


def parse_urls(urls: Sequence[str]) -> list[UpstreamURL]:
    """Each ``--url`` parsed and normalised; duplicates refused."""
    if not urls:
        raise InvalidInput("give at least one --url", param="url")
    parsed = [parse_upstream_url(u) for u in urls]
    bases = [u.base for u in parsed]
    if len(set(bases)) != len(bases):
        raise InvalidInput("the same --url is given twice", param="url")
    return parsed


def _client(
    allow: AllowList, resolve: Resolver, settings: Settings, secret: str | None
) -> httpx.AsyncClient:
    async def rules() -> AllowList:
        return allow

    return upstream_client(
        SafeTransport(rules, resolve=resolve, max_connections=4),
        connect_timeout_s=settings.endpoint_connect_timeout_s,
        read_timeout_s=settings.endpoint_probe_timeout_s,
        api_key=secret,
    )


async def _identify(
    urls: list[UpstreamURL],
    served_model: str,
    secret: str | None,
    *,
    allow: AllowList,
    resolve: Resolver,
    settings: Settings,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    for url in urls:  # every URL refused before any is contacted
        await check_url(allow, url, resolve)
    async with _client(allow, resolve, settings, secret) as client:
        found = [await probe_identity(client, u.base, served_model, secret) for u in urls]
    identity = same_identity([(u.base, ident) for u, (ident, _) in zip(urls, found, strict=True)])
    return identity, [details for _, details in found]


def _metadata(
    spec: EndpointSpec, details: list[dict[str, Any]], request: EndpointRequest, keyed: bool
) -> dict[str, Any]:
    meta = spec.identity.get("meta") or {}
    metadata: dict[str, Any] = {
        "endpoint": {
            "urls": list(spec.urls),
            "served_model": spec.served_model,
            "identity": dict(spec.identity),
            "replicas": details,
            "api_key": "stored encrypted" if keyed else None,
        },
        "architecture": "remote",
        "license": request.licence,
        "context_length": context_length(spec.identity, details),
    }
    if isinstance(meta.get("n_params"), int):
        metadata["parameters"] = meta["n_params"]
    return metadata


@audited("model.import")
def register_endpoint(
    registry: Registry,
    settings: Settings,
    request: EndpointRequest,
    *,
    actor: str,
    resolve: Resolver = system_resolve,
) -> ModelVersion:
    """Check, probe and register ``request`` as the next version of its name."""
    validate_name(request.name)
    if not request.served_model.strip():
        raise InvalidInput("--served-model is empty", param="served_model")
    urls = parse_urls(request.urls)
    allow = EndpointRules(registry.db, settings).allow_list()
    identity, details = asyncio.run(
        _identify(
            urls,
            request.served_model,
            request.api_key,
            allow=allow,
            resolve=resolve,
            settings=settings,
        )
    )
    spec = EndpointSpec(tuple(u.base for u in urls), request.served_model, identity)
    size = (identity.get("meta") or {}).get("size")
    new = NewVersion(
        name=request.name,
        digest=spec.digest(),
        format=ENDPOINT_FORMAT,
        size_bytes=size if isinstance(size, int) and size > 0 else 0,
        metadata=_metadata(spec, details, request, request.api_key is not None),
        files=(),
        source_path="endpoint: " + " ".join(spec.urls),
        created_by=actor,
        origin=REMOTE_ORIGIN,
        lineage={"remote": True, "urls": list(spec.urls), "served_model": spec.served_model},
    )
    return _insert(registry, settings, new, request.api_key)


def _insert(
    registry: Registry, settings: Settings, new: NewVersion, secret: str | None
) -> ModelVersion:
    try:
        with registry.db.session() as session:
            _refuse_same(session, new)
            version = registry.insert_version(session, new)
            if secret is not None:
                Credentials(registry.db, settings).store_in(
                    session, version, secret, actor=new.created_by
                )
            append_event(
                session,
                registry.db,
                settings,
                "model.import",
                new.created_by,
                version.ref,
                {
                    "origin": version.origin,
                    "format": version.format,
                    "digest": version.digest,
                    "size_bytes": version.size_bytes,
                    "licence": version.metadata.get("license"),
                    "parent": None,
                    "source_path": version.source_path,
                    "served_model": new.metadata["endpoint"]["served_model"],
                    "api_key": "stored encrypted" if secret is not None else None,
                },
            )
            return version
    except IntegrityError as exc:
        raise Conflict(f"{new.name} was registered by someone else meanwhile; try again") from exc


def _refuse_same(session: Any, new: NewVersion) -> None:
    newest = session.scalar(
        select(ModelVersionRow)
        .join(ModelRow)
        .where(ModelRow.name == new.name)
        .order_by(ModelVersionRow.version.desc())
        .limit(1)
    )
    if newest is not None and newest.digest == new.digest:
        raise Conflict(
            f"{ref_of(newest)} already registers this endpoint (same URLs, model and identity)"
        )


# -- trial load ------------------------------------------------------------------------------


async def _probe(
    spec: EndpointSpec,
    secret: str | None,
    *,
    allow: AllowList,
    resolve: Resolver,
    settings: Settings,
    model: str,
) -> Outcome:
    urls = [parse_upstream_url(u) for u in spec.urls]
    try:
        identity, _ = await _identify(
            urls, spec.served_model, secret, allow=allow, resolve=resolve, settings=settings
        )
    except ModelyardError as exc:
        return Outcome(False, f"the identity probe failed: {exc.message}")
    if identity != dict(spec.identity):
        differ = sorted(
            k for k in {*identity, *spec.identity} if identity.get(k) != spec.identity.get(k)
        )
        return Outcome(
            False, f"the upstream no longer reports the recorded identity ({', '.join(differ)})"
        )
    prompt = messages_prompt([{"role": "user", "content": "Hello"}], tools=None, model=model).parts
    tokens = 0
    async with _client(allow, resolve, settings, secret) as client:
        for url in spec.urls:
            call = UpstreamCall(
                client, url, model=model, served_model=spec.served_model, secret=secret
            )
            try:
                async with asyncio.timeout(settings.endpoint_probe_timeout_s):
                    async for event in call.events(
                        prompt, SamplingParams(max_tokens=1, temperature=0.0)
                    ):
                        if isinstance(event, Finish):
                            tokens += event.completion_tokens
            except ReplicaFailed as exc:
                return Outcome(False, f"{url}: {exc.error.message}")
            except ModelyardError as exc:
                return Outcome(False, f"{url}: {exc.message}")
            except TimeoutError:
                return Outcome(
                    False, f"{url}: no answer within {settings.endpoint_probe_timeout_s:g}s"
                )
    return Outcome(
        True,
        f"{len(spec.urls)} replica(s) report the recorded identity and generated {tokens} token(s)",
    )


@audited("model.trial_load")
def run_endpoint_trial(
    registry: Registry,
    settings: Settings,
    ref: str,
    *,
    actor: str,
    resolve: Resolver = system_resolve,
    clock: Callable[[], float] = time.monotonic,
) -> TrialLoad:
    """Probe endpoint version ``ref`` live and record the result (ok or not)."""
    version = registry.get(ref)
    spec = EndpointSpec.of(version)
    secret = Credentials(registry.db, settings).open(version)
    allow = EndpointRules(registry.db, settings).allow_list()
    started = clock()
    outcome = asyncio.run(
        _probe(spec, secret, allow=allow, resolve=resolve, settings=settings, model=version.ref)
    )
    engine = f"remote endpoint {spec.served_model!r} at {len(spec.urls)} replica(s)"
    return store_trial_load(registry, settings, version, outcome, engine, clock() - started, actor)
