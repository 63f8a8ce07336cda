"""The HTTP transport every upstream request goes through: checked at connect time.

For each request the host is parsed (:func:`~modelyard.engines.url_policy.parse_upstream_url`),
checked by name against the allow-list in force, resolved, and every resolved address
checked; the request is then sent to the **address that was checked** (the ``Host`` header
and, for HTTPS, the TLS server name and certificate check keep the host name). A name whose
DNS answer changes between registration and use (DNS rebinding) is refused, because the
client never resolves it again on its own.

Redirects are never followed (the client is built with ``follow_redirects=False`` and an
upstream's 3xx is an error, see :mod:`modelyard.engines.remote_engine`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from modelyard.engines.url_policy import (
    AllowList,
    Resolver,
    check_url,
    parse_upstream_url,
    system_resolve,
)


class RuleSource:
    """The allow-list in force, read again when older than ``ttl_s`` (off the event loop)."""

    def __init__(
        self,
        load: Callable[[], AllowList],
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_s
        self._clock = clock
        self._cached: AllowList | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> AllowList:
        async with self._lock:
            if self._cached is None or self._clock() - self._read_at >= self._ttl:
                self._cached = await asyncio.to_thread(self._load)
                self._read_at = self._clock()
            return self._cached


class SafeTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to allowed, checked addresses."""

    def __init__(
        self,
        rules: Callable[[], Awaitable[AllowList]],
        *,
        resolve: Resolver = system_resolve,
        max_connections: int = 64,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._rules = rules
        self._resolve = resolve
        self._inner = inner or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = parse_upstream_url(str(request.url), base=False)
        addresses = await check_url(await self._rules(), url, self._resolve)
        if url.address is None:
            target = addresses[0]
            request.url = request.url.copy_with(host=str(target))
            if url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": url.host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def upstream_client(
    transport: httpx.AsyncBaseTransport,
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    api_key: str | None = None,
) -> httpx.AsyncClient:
    """The client for one endpoint's replicas: no redirects, no environment proxies or
    netrc (``trust_env=False``), the API key as a Bearer header when there is one."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(
        transport=transport,
        headers=headers,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(
            connect=connect_timeout_s, read=read_timeout_s, write=30.0, pool=connect_timeout_s
        ),
    )
