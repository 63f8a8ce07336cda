"""The engine provider for endpoint versions: their replicas, over the network.

For each endpoint version in use the provider keeps one HTTP client (through
:class:`~modelyard.engines.safe_transport.SafeTransport`: the allow-list is checked on every
connection), the version's API key (opened from its sealed row once, kept in memory only),
its :class:`~modelyard.engines.replicas.ReplicaSet` and a health-check task.

A generation goes to the replica with the fewest requests in flight. If that replica fails
before anything reached the caller (connect error, 5xx, an answer that ended before it
began) the next one is tried, each replica once; a failure after the first event ends the
request with a clean error (``upstream_stopped``) and counts towards the replica's breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.base import Event, Prompt, SamplingParams, prompt_text
from modelyard.engines.endpoints import EndpointSpec
from modelyard.engines.remote_engine import ReplicaFailed, UpstreamCall, estimate_tokens, scrub
from modelyard.engines.replicas import BreakerSettings, Replica, ReplicaSet
from modelyard.engines.safe_transport import RuleSource, SafeTransport, upstream_client
from modelyard.engines.url_policy import AllowList, Resolver, UrlRefused, system_resolve
from modelyard.errors import Fault, ModelyardError, Unavailable
from modelyard.store.database import Database

log = logging.getLogger(__name__)

CredentialFn = Callable[[ModelVersion], Awaitable[str | None]]


@dataclass(frozen=True)
class RemoteOptions:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 300.0
    health_interval_s: float = 10.0
    max_connections: int = 64
    """Idle (keep-alive) connections kept per endpoint version."""
    max_in_flight: int = 256
    """Requests in flight per replica (the gateway's admission enforces it; the connection
    pool is sized so that every admitted request gets a connection at once)."""
    breaker: BreakerSettings = field(default_factory=BreakerSettings)

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteOptions:
        return cls(
            connect_timeout_s=settings.endpoint_connect_timeout_s,
            read_timeout_s=settings.endpoint_read_timeout_s,
            health_interval_s=settings.endpoint_health_interval_s,
            max_connections=settings.endpoint_max_connections,
            max_in_flight=settings.endpoint_max_in_flight,
            breaker=BreakerSettings(
                settings.endpoint_breaker_failures, settings.endpoint_breaker_cooldown_s
            ),
        )


def max_in_flight(version: ModelVersion, per_replica: int) -> int:
    """How many requests (streams) endpoint ``version`` takes at once from one gateway."""
    return per_replica * len(EndpointSpec.of(version).urls)


@dataclass(eq=False)
class Endpoint:
    version: ModelVersion
    spec: EndpointSpec
    replicas: ReplicaSet
    client: httpx.AsyncClient
    secret: str | None
    health: asyncio.Task[None] | None = None


class FailoverEngine:
    """A StreamingEngine over an endpoint's replicas (see the module docstring)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def _call(self, replica: Replica) -> UpstreamCall:
        endpoint = self.endpoint
        return UpstreamCall(
            endpoint.client,
            replica.url,
            model=endpoint.version.ref,
            served_model=endpoint.spec.served_model,
            secret=endpoint.secret,
        )

    async def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Event]:
        replicas = self.endpoint.replicas
        tried: list[Replica] = []
        last: ModelyardError | None = None
        while True:
            try:
                replica = replicas.acquire(exclude=tried)
            except Unavailable as exc:
                raise (last or exc) from None
            tried.append(replica)
            outcome: bool | None = None
            error: str | None = None
            try:
                async for event in self._call(replica).events(prompt, params):
                    yield event
                outcome = True
                return
            except ReplicaFailed as exc:
                outcome, error, last = False, exc.error.message, exc.error
                log.warning(
                    "%s: replica %s failed: %s", self.endpoint.version.ref, replica.url, error
                )
            except Fault as exc:
                outcome, error = False, exc.message
                raise
            # any other error is the request's own (a 4xx, a 429): it says nothing of the replica
            finally:
                replicas.release(replica, outcome, error)

    async def count_tokens(self, prompt: Prompt) -> int:
        return estimate_tokens(prompt_text(prompt))


class RemoteProvider:
    """An EngineProvider for endpoint versions."""

    def __init__(
        self,
        options: RemoteOptions,
        *,
        rules: Callable[[], Awaitable[AllowList]],
        credentials: CredentialFn,
        resolve: Resolver = system_resolve,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._rules = rules
        self._credentials = credentials
        self._resolve = resolve
        self._clock = clock
        self._endpoints: dict[tuple[str, str], Endpoint] = {}
        self._lock = asyncio.Lock()
        self._closing = False

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> RemoteProvider:
        from modelyard.engines.endpoint_store import Credentials, EndpointRules

        source = RuleSource(
            EndpointRules(db, settings).allow_list, ttl_s=settings.endpoint_rules_refresh_s
        )
        store = Credentials(db, settings)

        async def credential(version: ModelVersion) -> str | None:
            return await asyncio.to_thread(store.open, version)

        return cls(RemoteOptions.from_settings(settings), rules=source.get, credentials=credential)

    # -- serving -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, version: ModelVersion) -> AsyncIterator[FailoverEngine]:
        yield FailoverEngine(await self._endpoint(version))

    async def _endpoint(self, version: ModelVersion) -> Endpoint:
        if self._closing:
            raise Unavailable("the gateway is shutting down")
        key = (version.ref, version.digest)
        async with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                endpoint = await self._open(version)
                self._endpoints[key] = endpoint
                endpoint.health = asyncio.create_task(
                    self._health_loop(endpoint), name=f"health {version.ref}"
                )
        return endpoint

    async def _open(self, version: ModelVersion) -> Endpoint:
        spec = EndpointSpec.of(version)
        secret = await self._credentials(version)
        # Every admitted request holds a connection for its whole answer, and a health check
        # one per replica: the pool never makes either wait (a pool timeout would count
        # against a replica that did nothing wrong). Idle connections kept: max_connections.
        in_use = self.options.max_in_flight * len(spec.urls) + len(spec.urls)
        inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=max(in_use, self.options.max_connections),
                max_keepalive_connections=self.options.max_connections,
            ),
            retries=0,
        )
        transport = SafeTransport(self._rules, resolve=self._resolve, inner=inner)
        client = upstream_client(
            transport,
            connect_timeout_s=self.options.connect_timeout_s,
            read_timeout_s=self.options.read_timeout_s,
            api_key=secret,
        )
        replicas = ReplicaSet(spec.urls, self.options.breaker, clock=self._clock)
        return Endpoint(version, spec, replicas, client, secret)

    async def prewarm(self, versions: list[ModelVersion]) -> None:
        """Open these endpoints and check their replicas once now."""
        for version in versions:
            try:
                endpoint = await self._endpoint(version)
                await self.check(endpoint)
            except ModelyardError as exc:
                log.warning("could not open endpoint %s: %s", version.ref, exc.message)

    # -- health ------------------------------------------------------------------------------

    async def check(self, endpoint: Endpoint) -> None:
        """One health check of each replica that is due for one."""
        due = [r for r in endpoint.replicas.replicas if endpoint.replicas.due_for_check(r)]
        await asyncio.gather(*(self._check_one(endpoint, r) for r in due))

    async def _check_one(self, endpoint: Endpoint, replica: Replica) -> None:
        try:
            response = await endpoint.client.get(
                replica.url + "/v1/models", timeout=self.options.connect_timeout_s
            )
        except UrlRefused as exc:
            endpoint.replicas.health(replica, False, exc.message)
            return
        except httpx.HTTPError as exc:
            endpoint.replicas.health(replica, False, f"health check failed: {type(exc).__name__}")
            return
        ok = response.status_code == 200
        why = (
            None
            if ok
            else scrub(f"health check answered HTTP {response.status_code}", endpoint.secret)
        )
        endpoint.replicas.health(replica, ok, why)

    async def _health_loop(self, endpoint: Endpoint) -> None:
        while not self._closing:
            await asyncio.sleep(self.options.health_interval_s)
            try:
                await self.check(endpoint)
            except ModelyardError as exc:
                log.warning("health check of %s: %s", endpoint.version.ref, exc.message)

    # -- status ------------------------------------------------------------------------------

    def describe(self) -> str:
        o = self.options
        return (
            f"remote endpoints: breaker {o.breaker.failures} failures / "
            f"{o.breaker.cooldown_s:g}s cool-down, health every {o.health_interval_s:g}s"
        )

    def status(self) -> list[dict[str, Any]]:
        return [self._status(e) for e in self._endpoints.values()]

    def _status(self, endpoint: Endpoint) -> dict[str, Any]:
        replicas = endpoint.replicas
        up = replicas.available()
        errors = [r.last_error for r in replicas.replicas if r.last_error]
        return {
            "model": endpoint.version.ref,
            "digest": endpoint.version.digest,
            "kind": "remote",
            "state": "ready" if up else "failed",
            "pid": None,
            "in_use": sum(r.outstanding for r in replicas.replicas),
            "memory_bytes": None,
            "restarts": 0,
            "error": None if up else (errors[0] if errors else "no replica available"),
            "refused": None,
            "slots": None,
            "served_model": endpoint.spec.served_model,
            "replicas": replicas.to_json(),
            "updated": time.time(),
        }

    async def close(self) -> None:
        self._closing = True
        async with self._lock:
            for endpoint in self._endpoints.values():
                if endpoint.health is not None:
                    endpoint.health.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await endpoint.health
                await endpoint.client.aclose()
            self._endpoints.clear()
