"""Running bias probes on a model and storing one ``bias`` run per category (gate evidence)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from modelyard.catalog.registry import Registry
from modelyard.evaluate.bias import Probe, load_probes, measure, summarise_category
from modelyard.evaluate.data import file_sha256
from modelyard.evaluate.models import ScorerFactory
from modelyard.evaluate.runs import RunRecord, RunStore
from modelyard.evaluate.stats import bootstrap_mean

Progress = Callable[[int, int], None]


def run_probes(
    registry: Registry,
    store: RunStore,
    scorer_factory: ScorerFactory,
    *,
    model: str,
    probe_files: Sequence[Path],
    max_gap: float | None,
    created_by: str,
    progress: Progress | None = None,
) -> list[RunRecord]:
    """Score every probe; store a run per category with its mean gap, spread and worst pairs."""
    version = registry.resolve(model)
    by_category: dict[str, list[Probe]] = {}
    sources: dict[str, Path] = {}
    for path in probe_files:
        for probe in load_probes(path):
            by_category.setdefault(probe.category, []).append(probe)
            sources.setdefault(probe.category, path)
    total = sum(len(p) for p in by_category.values())
    done = 0
    scorer = scorer_factory(version)
    runs: list[RunRecord] = []
    try:
        for category, probes in by_category.items():
            started = time.perf_counter()
            run = store.create(
                kind="bias",
                model=version,
                suite=f"bias/{category}",
                metric=f"bias:{category}",
                data_path=str(sources[category]),
                data_sha256=file_sha256(sources[category]),
                rows_total=len(probes),
                config={"max_gap": max_gap},
                created_by=created_by,
            )
            results = []
            for index, probe in enumerate(probes):
                result = measure(scorer, probe)
                store.save_row(run.id, index, result["gap"], result)
                results.append(result)
                done += 1
                if progress:
                    progress(done, total)
            summary = summarise_category(results)
            gaps = [r["gap"] for r in results if r["measure"] == summary["measure"]]
            estimate = bootstrap_mean(gaps)
            summary["threshold"] = max_gap
            summary["passed"] = None if max_gap is None else estimate.value <= max_gap
            runs.append(store.finish(run.id, estimate, summary, time.perf_counter() - started))
    finally:
        scorer.close()
    return runs
