"""Settings → the engine-worker pool (defaults from the detected hardware)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.binary import find_llama_server
from modelyard.engines.load_check import LoadCheck
from modelyard.engines.worker_process import WorkerOptions
from modelyard.engines.workers import LoadCheckFn, WorkerPool
from modelyard.errors import InvalidInput
from modelyard.store.blobs import BlobStore

ALL_LAYERS = 999


def default_threads() -> int:
    """All cores but one: llama.cpp's threads spin-wait for each other, so a thread that
    shares a core with the gateway (or another worker) stalls every step of a generation."""
    return max(1, (os.cpu_count() or 1) - 1)


def worker_options(settings: Settings, *, gpu: bool) -> WorkerOptions:
    gpu_layers = settings.worker_gpu_layers
    if gpu_layers is None:
        gpu_layers = ALL_LAYERS if gpu else 0
    return WorkerOptions(
        slots=settings.worker_slots,
        ctx_per_slot=settings.worker_ctx_per_slot,
        threads=settings.worker_threads or default_threads(),
        kv_cache_type=settings.worker_kv_cache_type,
        gpu_layers=gpu_layers,
        batch_size=settings.worker_batch_size,
        prompt_cache_mb=settings.worker_prompt_cache_mb,
        weight_repack=settings.worker_weight_repack,
        slot_prompt_similarity=settings.worker_slot_prompt_similarity,
        swa_full=settings.worker_swa_full,
        user=settings.worker_user or None,
        start_timeout_s=settings.worker_start_timeout_s,
    )


def pool_from_settings(
    settings: Settings,
    blobs: BlobStore,
    *,
    run_dir: Path | None = None,
    load_check: LoadCheckFn | None = None,
    batch: bool = False,
) -> WorkerPool:
    """The gateway's pool (status files under the home), or a private one (``run_dir``);
    with ``batch``, the batch workers' (``batch_concurrency`` slots, idle priority).

    Every load is checked (``load_check.LoadCheck``: digest, and signature where the policy
    requires one) unless another ``load_check`` is given."""
    binary = find_llama_server(settings)
    options = worker_options(settings, gpu=binary.gpu)
    if batch:
        options = replace(
            options,
            slots=settings.batch_concurrency,
            threads=settings.batch_threads or options.threads,
            idle_priority=True,
        )

    def model_path(version: ModelVersion) -> Path:
        if version.format != "gguf":
            raise InvalidInput(
                f"{version.ref} is a {version.format} model; engine workers run GGUF files "
                "(quantize or convert it to GGUF first)",
                param="model",
            )
        return blobs.path_for(version.files[0].sha256)

    return WorkerPool(
        binary,
        options,
        model_path=model_path,
        budget_bytes=settings.gateway_memory_budget_mb * 1024 * 1024,
        run_dir=run_dir or settings.run_dir,
        queue_size=settings.gateway_queue_size,
        backoff_cap_s=settings.worker_backoff_cap_s,
        load_check=load_check or LoadCheck(settings),
    )


def batch_engine_mode(settings: Settings, *, gpu: bool) -> str:
    """``idle`` (batch lines on workers of their own at idle priority) or ``shared`` (in the
    interactive workers' idle slots); ``auto`` is idle on CPU builds, shared on GPU ones,
    where a second worker would hold a second copy of the weights in GPU memory."""
    if settings.batch_engine != "auto":
        return settings.batch_engine
    return "shared" if gpu else "idle"


def batch_pool_from_settings(settings: Settings, blobs: BlobStore) -> WorkerPool | None:
    """The workers batch lines run on in ``idle`` mode: one per version in use, with
    ``batch_concurrency`` slots, at the kernel's idle scheduling priority; None in ``shared``
    mode. They map the same model file as the interactive worker (the weights' pages are
    shared); their KV cache is their own. Status files under ``run/batch/``."""
    if batch_engine_mode(settings, gpu=find_llama_server(settings).gpu) != "idle":
        return None
    return pool_from_settings(settings, blobs, run_dir=settings.run_dir / "batch", batch=True)
