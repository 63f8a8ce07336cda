"""A synchronous :class:`~modelyard.engines.base.Engine` over an endpoint version's replicas.

What :class:`~modelyard.engines.worker_engine.WorkerEngine` is to a local version, for the
commands that generate outside the gateway (``modelyard bench --model``, ``eval run``,
``pilot``): a private event loop on a background thread runs a
:class:`~modelyard.engines.remote_provider.RemoteProvider`, so the allow-list is checked on
every connection, the API key is opened from its sealed row, and replica choice, failover and
breakers work as in the gateway. Like a local evaluation, these commands talk to the engine
directly: no API key, limits, PII policy or request audit of the gateway is involved.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.base import Event, Prompt, SamplingParams, prompt_text
from modelyard.engines.endpoints import EndpointSpec
from modelyard.engines.loop_bridge import LoopBridge
from modelyard.engines.remote_engine import estimate_tokens
from modelyard.engines.remote_provider import RemoteProvider
from modelyard.store.database import Database


class RemoteEngine:
    def __init__(
        self, version: ModelVersion, settings: Settings, db: Database | None = None
    ) -> None:
        self.version = version
        self.spec = EndpointSpec.of(version)  # InvalidInput for anything but an endpoint
        self._own_db = db is None
        self._db = db or Database(settings.resolved_database_url)
        context = version.metadata.get("context_length")
        self._context = context if isinstance(context, int) and context > 0 else settings.n_ctx
        self._bridge = LoopBridge(f"endpoint {version.ref}")
        self._provider = RemoteProvider.from_settings(settings, self._db)
        self._closed = False

    @property
    def context_length(self) -> int:
        """The context the upstream reported at registration (its smallest replica's)."""
        return self._context

    def start(self) -> None:
        """Open the endpoint and check its replicas once now."""
        self._bridge.run(self._provider.prewarm([self.version]))

    def count_tokens(self, text: Prompt) -> int:
        """An estimate (4 characters a token): an upstream's tokenizer is not at hand."""
        return estimate_tokens(prompt_text(text))

    def complete(self, prompt: Prompt, params: SamplingParams) -> Iterator[Event]:
        return self._bridge.stream(self._provider, self.version, prompt, params)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._bridge.run(self._provider.close())
        finally:
            self._bridge.stop()
            if self._own_db:
                self._db.close()


def open_remote_engine(
    version: ModelVersion, settings: Settings, db: Database | None = None
) -> RemoteEngine:
    """A synchronous engine for endpoint ``version`` (see the module docstring)."""
    return RemoteEngine(version, settings, db)
