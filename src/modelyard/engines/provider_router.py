"""The gateway's engine provider: endpoint versions to the remote provider, the rest to the
engine-worker pool."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from modelyard.catalog.records import ModelVersion
from modelyard.engines.endpoints import is_endpoint
from modelyard.engines.provider import EngineProvider, StreamingEngine


class ProviderRouter:
    """An EngineProvider that hands each version to the provider that runs its kind."""

    def __init__(self, local: EngineProvider, remote: EngineProvider) -> None:
        self.local = local
        self.remote = remote

    def _for(self, version: ModelVersion) -> EngineProvider:
        return self.remote if is_endpoint(version) else self.local

    def lease(self, version: ModelVersion) -> AbstractAsyncContextManager[StreamingEngine]:
        return self._for(version).lease(version)

    async def prewarm(self, versions: list[ModelVersion]) -> None:
        remote = [v for v in versions if is_endpoint(v)]
        local = [v for v in versions if not is_endpoint(v)]
        if local:
            await self.local.prewarm(local)
        if remote:
            await self.remote.prewarm(remote)

    def status(self) -> list[dict[str, Any]]:
        return [*self.local.status(), *self.remote.status()]

    def describe(self) -> str:
        return f"{self.local.describe()}; {self.remote.describe()}"

    async def close(self) -> None:
        try:
            await self.remote.close()
        finally:
            await self.local.close()

    def __getattr__(self, name: str) -> Any:
        """Anything else is the local pool's (tools and tests that look inside the pool)."""
        if name in ("local", "remote"):
            raise AttributeError(name)
        return getattr(self.local, name)

    def busy(self) -> int:
        """Requests in flight on local workers and remote replicas together."""
        local = getattr(self.local, "busy", None)
        in_use = sum(int(s.get("in_use") or 0) for s in self.remote.status())
        return (local() if callable(local) else 0) + in_use
