"""The engine-worker pool: one ``llama-server`` process per model version in use.

* A worker starts on first use (or at ``serve`` start for production versions) and takes
  requests once its ``/health`` answers.
* Each worker's memory is counted (the estimate until it is up, then its measured RSS);
  when starting another would exceed the budget, the least-recently-used idle workers are
  stopped first. If the memory is held by workers in use, the request gets 503.
* A worker that dies is marked failed: its model answers 503 ``model_unavailable`` with
  ``Retry-After`` while the others go on. One that died while serving is restarted after a
  backoff (1 s, doubling up to ``worker_backoff_cap_s``); one that never came up (a model
  file that crashes llama.cpp's loader) is retried only when asked for after the backoff.
* Before each start the model file's bytes are checked (``load_check``: SHA-256 against the
  version's digest, a signature when the policy requires one) on the very descriptor the
  worker inherits; a refused load is ``failed`` with ``refused`` set and is not retried
  before the backoff.
* Every state change is written to ``<home>/run/workers/<digest>.json`` so that
  ``modelyard models show`` in another process can say why a model is not serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelyard.atomic_write import write_text
from modelyard.catalog.records import ModelVersion
from modelyard.engines.binary import ServerBinary
from modelyard.engines.http_engine import EngineEndpoint, HTTPEngine
from modelyard.engines.worker_process import LoadRefused, WorkerOptions, WorkerProcess
from modelyard.errors import ModelyardError, Unavailable

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "failed", "stopped"]
LoadCheckFn = Callable[[ModelVersion, int], None]
"""Called with the version and the model file's open descriptor before a worker starts;
raises LoadRefused to refuse the load (``load_check.LoadCheck``)."""
_OVERHEAD_BYTES = 256 * 1024 * 1024


def estimate_bytes(version: ModelVersion) -> int:
    """Memory assumed for a worker before it is measured: weights, caches, buffers."""
    return int(version.size_bytes * 1.1) + _OVERHEAD_BYTES


def model_context(version: ModelVersion, ctx_per_slot: int) -> int:
    trained = version.metadata.get("context_length")
    if isinstance(trained, int) and trained > 0:
        return min(trained, ctx_per_slot)
    return ctx_per_slot


def _rss_bytes(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(eq=False)
class Worker:
    version: ModelVersion
    size: int
    state: State = "starting"
    process: WorkerProcess | None = None
    engine: HTTPEngine | None = None
    error: str | None = None
    refused: str | None = None
    """Why the load check refused the model file (None when it was not refused)."""
    failures: int = 0
    restarts: int = 0
    retry_at: float = 0.0
    in_use: int = 0
    last_used: float = 0.0
    served_before: bool = False
    startup: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    stopping: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return self.version.ref


class WorkerPool:
    def __init__(
        self,
        binary: ServerBinary,
        options: WorkerOptions,
        *,
        model_path: Callable[[ModelVersion], Path],
        budget_bytes: int,
        run_dir: Path,
        queue_size: int,
        backoff_cap_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        load_check: LoadCheckFn | None = None,
    ) -> None:
        self.binary = binary
        self._load_check = load_check
        self.options = options
        self._model_path = model_path
        self._budget = budget_bytes
        self._status_dir = run_dir / "workers"
        self._queue_size = queue_size
        self._backoff_cap = backoff_cap_s
        self._clock = clock
        self._workers: dict[str, Worker] = {}
        self._lock = asyncio.Lock()
        self._closing = False

    # -- serving ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, version: ModelVersion) -> AsyncIterator[HTTPEngine]:
        """The engine of ``version``'s worker, started if needed; held while in use."""
        worker = await self._ready(version)  # counted in use from here: never evicted
        assert worker.engine is not None
        try:
            yield worker.engine
        finally:
            worker.in_use -= 1
            worker.last_used = self._clock()

    async def prewarm(self, versions: list[ModelVersion]) -> None:
        """Start workers for these versions now (``serve`` start: production aliases)."""
        for version in versions:
            try:
                worker = await self._ready(version)
                worker.in_use -= 1
                worker.last_used = self._clock()
            except Unavailable as exc:
                log.warning("could not start a worker for %s: %s", version.ref, exc.message)

    async def _ready(self, version: ModelVersion) -> Worker:
        """The version's worker, up, with one use taken (the caller gives it back)."""
        if self._closing:
            raise Unavailable("the gateway is shutting down")
        async with self._lock:
            worker = self._workers.get(version.digest)
            if worker is None or worker.state == "stopped":
                self._model_path(version)  # refuses what no worker can run (400), up front
                # The prompt cache fills up to its limit as the worker serves: count it now.
                cache = self.options.prompt_cache_mb * 1024 * 1024
                worker = Worker(version, estimate_bytes(version) + cache)
                await self._make_room(worker)
                self._workers[version.digest] = worker
                self._launch(worker)
            elif worker.state == "failed" and worker.startup is None:
                wait = worker.retry_at - self._clock()
                if wait > 0:
                    raise self._unavailable(worker, wait)
                self._launch(worker)
            # Taken under the lock: a worker that is starting or serving for this request
            # cannot be stopped to make room for another.
            worker.in_use += 1
        try:
            if worker.startup is not None:
                await asyncio.shield(worker.startup)
            if worker.state != "ready" or worker.engine is None:
                raise self._unavailable(worker, max(1.0, worker.retry_at - self._clock()))
        except BaseException:
            worker.in_use -= 1
            raise
        return worker

    def _unavailable(self, worker: Worker, wait: float) -> Unavailable:
        return Unavailable(
            f"{worker.ref} is not available: {worker.error or 'its engine worker is down'}",
            code="model_unavailable",
            retry_after_s=wait,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def _launch(self, worker: Worker) -> None:
        worker.state = "starting"
        worker.startup = asyncio.create_task(self._start(worker), name=f"start {worker.ref}")

    async def _start(self, worker: Worker) -> None:
        version = worker.version
        check = self._load_check
        worker.refused = None
        process = WorkerProcess(
            self.binary,
            self.options,
            model_path=self._model_path(version),
            ctx_per_slot=model_context(version, self.options.ctx_per_slot),
            log_path=self._status_dir / f"{version.digest}.log",
            check=None if check is None else (lambda fd: check(version, fd)),
        )
        worker.process = process
        self._write_status(worker)
        try:
            await process.start()
            engine = HTTPEngine(
                EngineEndpoint("http://engine-worker", process.secret, uds=str(process.socket)),
                model=version.ref,
                max_connections=self.options.slots + self._queue_size + 8,
            )
            await self._wait_healthy(worker, process, engine)
        except LoadRefused as exc:
            await process.stop()
            worker.refused = exc.message
            self._fail(worker, exc.message)
        except (OSError, ModelyardError) as exc:
            await process.stop()
            self._fail(worker, f"its engine worker could not be started: {exc}")
        finally:
            worker.startup = None
        if worker.state == "ready":
            worker.watcher = asyncio.create_task(self._watch(worker), name=f"watch {worker.ref}")

    async def _wait_healthy(
        self, worker: Worker, process: WorkerProcess, engine: HTTPEngine
    ) -> None:
        deadline = self._clock() + self.options.start_timeout_s
        while True:
            if not process.alive():
                code = await process.wait()
                await engine.aclose()
                await process.stop()
                self._fail(
                    worker,
                    f"its engine worker {exit_text(code)} while loading the model: "
                    f"{process.log_tail() or 'no message'}",
                )
                return
            if await engine.health():
                break
            if self._clock() > deadline:
                await engine.aclose()
                await process.stop()
                self._fail(
                    worker,
                    f"its engine worker did not come up within {self.options.start_timeout_s:g}s",
                )
                return
            await asyncio.sleep(0.05)
        worker.engine = engine
        worker.state = "ready"
        worker.error = None
        worker.refused = None
        worker.failures = 0
        worker.last_used = self._clock()
        if measured := _rss_bytes(process.pid):
            worker.size = max(worker.size, measured)
        log.info("engine worker for %s ready (pid %s)", worker.ref, process.pid)
        self._write_status(worker)

    async def _watch(self, worker: Worker) -> None:
        process = worker.process
        assert process is not None
        code = await process.wait()
        if worker.stopping or self._closing:
            return
        engine, worker.engine = worker.engine, None
        if engine is not None:
            await engine.aclose()
        tail = process.log_tail()
        await process.stop()
        self._fail(worker, f"its engine worker {exit_text(code)}" + (f": {tail}" if tail else ""))
        log.error("engine worker for %s %s; restarting", worker.ref, exit_text(code))
        await asyncio.sleep(max(0.0, worker.retry_at - self._clock()))
        async with self._lock:
            current = self._workers.get(worker.version.digest) is worker
            if current and worker.state == "failed" and not self._closing:
                worker.restarts += 1
                self._launch(worker)

    def _fail(self, worker: Worker, error: str) -> None:
        worker.state = "failed"
        worker.error = error
        worker.failures += 1
        backoff = min(self._backoff_cap, 2.0 ** (worker.failures - 1))
        worker.retry_at = self._clock() + backoff
        log.error("%s: %s", worker.ref, error)
        self._write_status(worker)

    async def _make_room(self, incoming: Worker) -> None:
        """Stop least-recently-used idle workers until ``incoming`` fits the budget."""
        used = sum(w.size for w in self._workers.values() if w.state != "stopped")
        idle = sorted(
            (w for w in self._workers.values() if w.in_use == 0 and w.state in ("ready", "failed")),
            key=lambda w: w.last_used,
        )
        while used + incoming.size > self._budget and idle:
            victim = idle.pop(0)
            log.info(
                "stopping the engine worker of %s to stay within the memory budget", victim.ref
            )
            used -= victim.size
            await self._stop(victim)
        busy = used  # what is left is held by workers in use (or starting)
        if busy and busy + incoming.size > self._budget:
            raise Unavailable(
                "the gateway's memory budget is taken by models in use; retry shortly",
                code="memory_budget_exhausted",
                retry_after_s=2,
            )

    async def _stop(self, worker: Worker) -> None:
        worker.stopping = True
        if worker.startup is not None:
            worker.startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.startup
        if worker.engine is not None:
            await worker.engine.aclose()
            worker.engine = None
        if worker.process is not None:
            await worker.process.stop()
        if worker.watcher is not None:
            worker.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.watcher
        worker.state = "stopped"
        self._workers.pop(worker.version.digest, None)
        self._write_status(worker)

    async def close(self) -> None:
        self._closing = True
        async with self._lock:
            for worker in list(self._workers.values()):
                await self._stop(worker)

    # -- status ----------------------------------------------------------------------------

    def describe(self) -> str:
        options = self.options
        gpu = f", {options.gpu_layers} GPU layers" if options.gpu_layers else ""
        return (
            f"engine workers: llama-server {self.binary.describe()}; {options.slots} slots x "
            f"{options.ctx_per_slot} tokens, {options.threads} threads{gpu}"
        )

    def busy(self) -> int:
        return sum(w.in_use for w in self._workers.values())

    def status(self) -> list[dict[str, Any]]:
        return [self._status(w) for w in self._workers.values()]

    def _status(self, worker: Worker) -> dict[str, Any]:
        process = worker.process
        return {
            "model": worker.ref,
            "digest": worker.version.digest,
            "state": worker.state,
            "pid": process.pid if process and process.alive() else None,
            "in_use": worker.in_use,
            "memory_bytes": worker.size,
            "restarts": worker.restarts,
            "error": worker.error,
            "refused": worker.refused,
            "slots": self.options.slots,
            "ctx_per_slot": model_context(worker.version, self.options.ctx_per_slot),
            "binary": self.binary.describe(),
            "updated": time.time(),
        }

    def _write_status(self, worker: Worker) -> None:
        path = self._status_dir / f"{worker.version.digest}.json"
        try:
            write_text(path, json.dumps(self._status(worker)))
        except OSError as exc:
            log.warning("could not write the worker status of %s: %s", worker.ref, exc)


def read_status(run_dir: Path, digest: str) -> dict[str, Any] | None:
    """The last status a gateway wrote for this version's worker (None if never started)."""
    try:
        data: dict[str, Any] = json.loads(
            (run_dir / "workers" / f"{digest}.json").read_text(encoding="utf-8")
        )
    except (OSError, ValueError):
        return None
    return data
