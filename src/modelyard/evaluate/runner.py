"""Running an evaluation: resolve, load, create or resume the stored run, score, aggregate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.engines.base import Engine, SamplingParams, prompt_text
from modelyard.engines.endpoints import is_endpoint
from modelyard.engines.scoring import Scorer
from modelyard.errors import Conflict, InvalidInput
from modelyard.evaluate.data import EvalRow, file_sha256, load_rows
from modelyard.evaluate.metrics import check_rows, metric_kind
from modelyard.evaluate.models import ENDPOINT_SCORING, EngineFactory, ScorerFactory
from modelyard.evaluate.prompts import row_chat
from modelyard.evaluate.runs import RowResult, RunRecord, RunStore
from modelyard.evaluate.stats import Estimate, bootstrap_mean, bootstrap_perplexity, percentile
from modelyard.evaluate.tasks import score_choice, score_generation

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EvalSpec:
    """What to evaluate; its signature is the run's configuration (saved with the run)."""

    model: str
    data: Path
    metric: str
    suite: str | None = None
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int = 0
    window: int = 256
    schema: dict[str, Any] | None = None
    resume: str | None = None
    fresh: bool = False
    extra_config: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"suite": self.suite, "seed": self.seed}
        kind = metric_kind(self.metric)
        if kind == "generate":
            config.update(max_tokens=self.max_tokens, stop=list(self.stop), temperature=0.0)
        if kind == "perplexity":
            config["window"] = self.window
        if self.schema is not None:
            config["schema"] = self.schema
        config.update(self.extra_config)
        return config


@dataclass
class _Resources:
    engine_factory: EngineFactory
    scorer_factory: ScorerFactory
    version: ModelVersion
    engine: Engine | None = None
    scorer: Scorer | None = None

    def get_engine(self) -> Engine:
        if self.engine is None:
            self.engine = self.engine_factory(self.version)
        return self.engine

    def get_scorer(self) -> Scorer:
        if self.scorer is None:
            self.scorer = self.scorer_factory(self.version)
        return self.scorer

    def close(self) -> None:
        for thing in (self.engine, self.scorer):
            if thing is not None:
                thing.close()


def perplexity_windows(scorer: Scorer, path: Path, window: int) -> list[list[int]]:
    """Split a text file's tokens into windows that each start with BOS and are scored alone."""
    if not path.is_file():
        raise InvalidInput(f"no such text file: {path}")
    text = path.read_text(encoding="utf-8")
    if window < 2 or window > scorer.context_length:
        raise InvalidInput(
            f"--window must be between 2 and the model's context ({scorer.context_length})"
        )
    bos = scorer.tokenize("", add_bos=True)
    tokens = scorer.tokenize(text, add_bos=False)
    size = window - len(bos)
    windows = [bos + tokens[i : i + size] for i in range(0, len(tokens), size)]
    windows = [w for w in windows if len(w) >= len(bos) + 1]
    if not windows or sum(len(w) - 1 for w in windows) < 1:
        raise InvalidInput(f"{path} has no text to score")
    return windows


def summarise(metric: str, results: list[dict[str, Any]], scores: list[float]) -> Estimate:
    if metric == "perplexity":
        return bootstrap_perplexity([r["nll"] for r in results], [r["tokens"] for r in results])
    return bootstrap_mean(scores)


def run_details(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed figures from the per-row results (what pilot reports show beside quality)."""
    latencies = [float(r["latency_s"]) for r in results if r.get("latency_s") is not None]
    ttfts = [float(r["ttft_s"]) for r in results if r.get("ttft_s") is not None]
    completion = sum(int(r.get("completion_tokens") or 0) for r in results)
    generating = sum(
        float(r["latency_s"]) for r in results if r.get("completion_tokens") is not None
    )
    return {
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_mean_s": sum(latencies) / len(latencies) if latencies else None,
        "ttft_p50_s": percentile(ttfts, 50),
        "completion_tokens": completion,
        "tokens_per_s": completion / generating if generating > 0 and completion else None,
    }


class EvalRunner:
    def __init__(
        self,
        registry: Registry,
        store: RunStore,
        *,
        engine_factory: EngineFactory,
        scorer_factory: ScorerFactory,
        created_by: str,
    ) -> None:
        self.registry = registry
        self.store = store
        self.engine_factory = engine_factory
        self.scorer_factory = scorer_factory
        self.created_by = created_by

    def _start(self, spec: EvalSpec, version: ModelVersion, sha: str, total: int) -> RunRecord:
        config = spec.config()
        if spec.resume:
            run = self.store.get(spec.resume)
            if (run.model_digest, run.data_sha256, run.metric) != (
                version.digest,
                sha,
                spec.metric,
            ):
                raise Conflict(
                    f"run {run.id} was for {run.model_ref} / {run.metric} on other data; "
                    "it cannot be resumed with these arguments"
                )
            return self.store.reopen(run.id)
        if not spec.fresh:
            found = self.store.find_resumable(
                kind="eval", model=version, metric=spec.metric, data_sha256=sha, config=config
            )
            if found is not None:
                return self.store.reopen(found.id)
        return self.store.create(
            kind="eval",
            model=version,
            suite=spec.suite,
            metric=spec.metric,
            data_path=str(spec.data.resolve()),
            data_sha256=sha,
            rows_total=total,
            config=config,
            created_by=self.created_by,
        )

    def run(self, spec: EvalSpec, progress: Progress | None = None) -> RunRecord:
        kind = metric_kind(spec.metric)
        version = self.registry.resolve(spec.model)
        if kind != "generate" and is_endpoint(version):
            raise InvalidInput(ENDPOINT_SCORING.format(ref=version.ref), param="metric")
        if not spec.data.is_file():
            raise InvalidInput(f"no such data file: {spec.data}", param="data")
        sha = file_sha256(spec.data)
        resources = _Resources(self.engine_factory, self.scorer_factory, version)
        try:
            if kind == "perplexity":
                windows = perplexity_windows(resources.get_scorer(), spec.data, spec.window)
                items: list[Any] = list(windows)
            else:
                rows = load_rows(spec.data)
                if spec.schema is not None:
                    rows = [r if r.schema else _with_schema(r, spec.schema) for r in rows]
                check_rows(spec.metric, rows)
                items = rows
            run = self._start(spec, version, sha, len(items))
            return self._loop(spec, run, resources, items, progress)
        finally:
            resources.close()

    def _loop(
        self,
        spec: EvalSpec,
        run: RunRecord,
        resources: _Resources,
        items: list[Any],
        progress: Progress | None,
    ) -> RunRecord:
        done = {r.index: r for r in self.store.rows(run.id)}
        started = time.perf_counter()
        metadata = resources.version.metadata
        params = SamplingParams(
            max_tokens=spec.max_tokens, temperature=0.0, seed=spec.seed, stop=spec.stop
        )
        with _accounted(self.store, run.id, started):
            if progress:
                progress(len(done), len(items))
            for index, item in enumerate(items):
                if index in done:
                    continue
                score, result = self._score(spec, resources, item, metadata, params)
                self.store.save_row(run.id, index, score, result)
                done[index] = RowResult(index, score, result)
                if progress:
                    progress(len(done), len(items))
        ordered = [done[i] for i in range(len(items))]
        results = [d.result for d in ordered]
        estimate = summarise(spec.metric, results, [d.score for d in ordered])
        return self.store.finish(run.id, estimate, run_details(results), 0.0)

    def _score(
        self,
        spec: EvalSpec,
        resources: _Resources,
        item: Any,
        metadata: dict[str, Any],
        params: SamplingParams,
    ) -> tuple[float, dict[str, Any]]:
        kind = metric_kind(spec.metric)
        if kind == "perplexity":
            started = time.perf_counter()
            nll = resources.get_scorer().token_nll(item)
            return nll.perplexity, {
                "nll": nll.nll,
                "tokens": nll.tokens,
                "latency_s": time.perf_counter() - started,
            }
        row: EvalRow = item
        prompt, stops = row_chat(row, metadata, remote=is_endpoint(resources.version))
        if kind == "choice":
            return score_choice(resources.get_scorer(), row, prompt_text(prompt))
        # Like the gateway: the chat format's stop strings end the answer too.
        params = replace(params, stop=tuple(dict.fromkeys(params.stop + stops)))
        return score_generation(spec.metric, resources.get_engine(), row, prompt, params)


def _with_schema(row: EvalRow, schema: dict[str, Any]) -> EvalRow:
    return replace(row, schema=schema)


@contextmanager
def _accounted(store: RunStore, run_id: str, started: float) -> Iterator[None]:
    """Add the loop's time to the run; an interruption leaves it ``failed`` and resumable."""
    try:
        yield
    except BaseException:
        store.add_duration(run_id, time.perf_counter() - started, status="failed")
        raise
    store.add_duration(run_id, time.perf_counter() - started)
