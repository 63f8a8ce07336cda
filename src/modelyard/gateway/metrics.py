"""Prometheus metrics for one gateway (its own registry: no process-wide state).

Labels carry route, model reference and status only — never a key, a key name or any text
from a prompt or an answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _LoadedModels(Collector):
    def __init__(self, source: Callable[[], list[tuple[str, str, int]]]) -> None:
        self.source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelyard_loaded_models",
            "Engine copies loaded, by model version and kind.",
            labels=["model", "kind"],
        )
        for ref, kind, copies in self.source():
            family.add_metric([ref, kind], copies)
        yield family


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelyard_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelyard_request_seconds",
            "Time from request to the end of the response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "modelyard_time_to_first_token_seconds",
            "Time from admission to the first generated text, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens_in = Counter(
            "modelyard_prompt_tokens",
            "Prompt (input) tokens processed, by model.",
            ["model"],
            registry=self.registry,
        )
        self.tokens_out = Counter(
            "modelyard_completion_tokens",
            "Completion (output) tokens generated, by model.",
            ["model"],
            registry=self.registry,
        )
        self.cancelled = Counter(
            "modelyard_generations_cancelled",
            "Generations stopped because the client went away.",
            registry=self.registry,
        )
        self.batch_lines = Counter(
            "modelyard_batch_lines",
            "Batch lines run, by outcome: done (an answer recorded), retried (a transient "
            "failure, tried again) or preempted (stopped for interactive traffic, run again).",
            ["outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "modelyard_queue_depth", "Requests waiting for a worker slot.", registry=self.registry
        )
        self.busy_slots = Gauge(
            "modelyard_busy_slots", "Worker slots running a request.", registry=self.registry
        )

    def watch(
        self,
        *,
        queue_depth: Callable[[], float],
        busy: Callable[[], float],
        loaded: Callable[[], list[tuple[str, str, int]]],
    ) -> None:
        self.queue_depth.set_function(queue_depth)
        self.busy_slots.set_function(busy)
        self.registry.register(_LoadedModels(loaded))

    def render(self) -> bytes:
        return generate_latest(self.registry)
