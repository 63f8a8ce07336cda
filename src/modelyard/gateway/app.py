"""The app factory: routers, error translation, size limits, request metrics, lifespan.

Middleware order, outermost first: request metrics (every answer is counted), authentication
(from the headers, before any body is read), size limits (headers, then the body as it
streams in), then the routes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard import __version__
from modelyard.batch.runner import BatchRunner
from modelyard.config import Settings
from modelyard.engines.template_sandbox import TemplateRenderer
from modelyard.gateway.auth import AuthenticateFirst
from modelyard.gateway.errors import install_error_handlers
from modelyard.gateway.limits import SizeLimits
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.routes import (
    batches,
    chat,
    completions,
    embeddings,
    files,
    governance_admin,
    health,
    lifecycle_admin,
    models,
    workers_admin,
)
from modelyard.gateway.state import Gateway
from modelyard.web.console import install_console

UPLOAD_OVERHEAD_BYTES = 64 * 1024
"""Room for a multipart upload's own headers and boundaries beyond the file's bytes."""


class RequestMetrics:
    """Gives each request an id and records its route, status and latency (ASGI middleware)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["request_id"] = f"req-{secrets.token_hex(8)}"
        started = time.perf_counter()
        status = 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)


def create_app(settings: Settings, *, gateway: Gateway | None = None) -> FastAPI:
    """A gateway app; it opens (or adopts) its :class:`Gateway` when the server starts."""
    state = gateway or Gateway.open(settings)
    renderer = TemplateRenderer(
        processes=settings.template_renderers,
        timeout_s=settings.template_render_timeout_s,
        memory_mb=settings.template_render_memory_mb,
        max_output_chars=settings.template_max_output_chars,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        runner = BatchRunner(app, state, clock=state.clock)
        runner.start()
        app.state.batch_runner = runner
        try:
            yield
        finally:
            try:
                await runner.stop()  # lines in flight stay pending; the lease is released
            finally:
                renderer.close()
                await state.close()

    app = FastAPI(
        title="modelyard gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.gateway = state
    app.state.template_renderer = renderer
    install_error_handlers(app)
    for module in (
        models,
        chat,
        completions,
        embeddings,
        files,
        batches,
        health,
        governance_admin,
        lifecycle_admin,
        workers_admin,
    ):
        app.include_router(module.router)
    install_console(app)
    # added innermost first
    app.add_middleware(
        SizeLimits,
        max_body_bytes=settings.gateway_max_body_bytes,
        max_header_bytes=settings.gateway_max_header_bytes,
        path_limits={"/v1/files": settings.batch_max_file_bytes + UPLOAD_OVERHEAD_BYTES},
    )
    app.add_middleware(AuthenticateFirst, gateway=state)
    app.add_middleware(RequestMetrics, metrics=state.metrics)
    return app
