"""Trial load: does llama.cpp load this GGUF and produce a token, in a sandboxed worker?

Some GGUF files parse fine (intake accepts them) and then abort llama.cpp's loader. Before
such a version can be promoted past ``candidate`` (policy ``trial_load = true`` on a later
stage), ``modelyard models trial-load REF`` starts one engine worker for it the way the
gateway would (``worker_process.py``: the file as an inherited read-only descriptor, checked
first by ``load_check``; loopback Unix socket; minimal environment; unprivileged user when
root), with tighter bounds:

* ``RLIMIT_AS`` (address space: ``trial_load_memory_mb``, default 4 GiB + 3 x the file; not
  set for GPU builds, whose drivers reserve huge address ranges), ``RLIMIT_CPU``
  (``trial_load_cpu_s``), ``RLIMIT_CORE`` 0 (no core dump of a crashing loader);
* one slot, a small context, one thread, no prompt cache;
* a deadline (``trial_load_timeout_s``) for loading and generating one token.

The result (ok, or why not with the loader's last log lines) is recorded for these exact
bytes (``version_trial_loads``) and in the audit log; the policy's ``trial_load`` gate reads
the newest record. Promotion does not run a trial load itself: it requires the recorded
success, so a promotion is quick and its evidence is a record anyone can inspect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.lifecycle import aware
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.registry import Registry
from modelyard.catalog.rows import find_version, ref_of
from modelyard.config import Settings
from modelyard.engines.base import Finish, SamplingParams
from modelyard.engines.binary import ServerBinary, find_llama_server
from modelyard.engines.http_engine import EngineEndpoint, HTTPEngine
from modelyard.engines.load_check import LoadCheck
from modelyard.engines.worker_options import worker_options
from modelyard.engines.worker_process import (
    LoadRefused,
    ResourceLimits,
    WorkerOptions,
    WorkerProcess,
)
from modelyard.engines.workers import exit_text
from modelyard.errors import InvalidInput, ModelyardError
from modelyard.store.attestation_tables import TrialLoadRow

TRIAL_CONTEXT = 512
_MIB = 1024 * 1024


@dataclass(frozen=True)
class TrialLoad:
    ref: str
    digest: str
    ok: bool
    detail: str
    log_tail: str
    engine: str
    seconds: float
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "ok": self.ok,
            "detail": self.detail,
            "log_tail": self.log_tail,
            "engine": self.engine,
            "seconds": round(self.seconds, 3),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str
    log_tail: str = ""


def sandbox_limits(
    settings: Settings, version: ModelVersion, binary: ServerBinary
) -> ResourceLimits:
    if settings.trial_load_memory_mb:
        space = settings.trial_load_memory_mb * _MIB
    elif binary.gpu:
        space = resource.RLIM_INFINITY  # GPU drivers reserve address space beyond any model
    else:
        space = 4096 * _MIB + 3 * version.size_bytes
    return ResourceLimits(address_space_bytes=space, cpu_seconds=settings.trial_load_cpu_s)


def trial_options(settings: Settings, binary: ServerBinary, timeout_s: float) -> WorkerOptions:
    base = worker_options(settings, gpu=binary.gpu)
    return dataclasses.replace(
        base,
        slots=1,
        ctx_per_slot=TRIAL_CONTEXT,
        threads=1,
        batch_size=TRIAL_CONTEXT,
        prompt_cache_mb=0,
        start_timeout_s=timeout_s,
    )


async def attempt(
    process: WorkerProcess, *, timeout_s: float, clock: Callable[[], float] = time.monotonic
) -> Outcome:
    """Start ``process``, wait for its /health, generate one token; always stopped after."""
    try:
        await process.start()
    except LoadRefused as exc:
        return Outcome(False, exc.message)
    except OSError as exc:
        await process.stop()
        return Outcome(False, f"the engine worker could not be started: {exc}")
    engine = HTTPEngine(
        EngineEndpoint("http://engine-worker", process.secret, uds=str(process.socket)),
        model="trial",
        max_connections=2,
    )
    try:
        deadline = clock() + timeout_s
        while not await engine.health():
            if not process.alive():
                code = await process.wait()
                return Outcome(
                    False, f"llama-server {exit_text(code)} while loading the model", _tail(process)
                )
            if clock() > deadline:
                return Outcome(
                    False, f"the model did not load within {timeout_s:g}s", _tail(process)
                )
            await asyncio.sleep(0.05)
        try:
            finish = await asyncio.wait_for(_one_token(engine), max(1.0, deadline - clock()))
        except (ModelyardError, httpx.HTTPError, TimeoutError) as exc:
            died = "" if process.alive() else f" (llama-server {exit_text(await process.wait())})"
            return Outcome(False, f"loaded, but generating failed{died}: {exc}", _tail(process))
        return Outcome(
            True, f"loaded and generated {finish.completion_tokens} token(s)", _tail(process)
        )
    finally:
        await engine.aclose()
        await process.stop()


async def _one_token(engine: HTTPEngine) -> Finish:
    async for event in engine.stream("Hello", SamplingParams(max_tokens=1, temperature=0.0)):
        if isinstance(event, Finish):
            return event
    raise ModelyardError("the engine ended the stream without finishing")


def _tail(process: WorkerProcess) -> str:
    return process.log_tail()


@audited("model.trial_load")
def run_trial_load(
    registry: Registry,
    settings: Settings,
    ref: str,
    *,
    actor: str,
    clock: Callable[[], float] = time.monotonic,
) -> TrialLoad:
    """Trial-load ``ref`` in a sandboxed worker and record the result (ok or not)."""
    version = registry.get(ref)
    if version.format != "gguf":
        raise InvalidInput(
            f"{version.ref} is a {version.format} model; trial loads run GGUF files in an "
            "engine worker",
            param="model",
        )
    binary = find_llama_server(settings)
    timeout_s = settings.trial_load_timeout_s
    scratch = Path(tempfile.mkdtemp(prefix="modelyard-trial-"))
    started = clock()
    try:
        process = WorkerProcess(
            binary,
            trial_options(settings, binary, timeout_s),
            model_path=registry.blobs.path_for(version.files[0].sha256),
            ctx_per_slot=TRIAL_CONTEXT,
            log_path=scratch / "worker.log",
            check=lambda fd: LoadCheck(settings)(version, fd),
            limits=sandbox_limits(settings, version, binary),
        )
        outcome = asyncio.run(attempt(process, timeout_s=timeout_s, clock=clock))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    engine = f"llama-server {binary.version or 'version unknown'}, {binary.backend}"
    return store_trial_load(registry, settings, version, outcome, engine, clock() - started, actor)


def store_trial_load(
    registry: Registry,
    settings: Settings,
    version: ModelVersion,
    outcome: Outcome,
    engine: str,
    seconds: float,
    actor: str,
) -> TrialLoad:
    """Store a trial load's outcome for ``version`` and its ``model.trial_load`` event, in
    one transaction (a local worker's trial, or an endpoint's live probe)."""
    with registry.db.session() as session:
        row = find_version(session, version.ref)
        record = TrialLoadRow(
            version_id=row.id,
            model_digest=version.digest,
            ok=outcome.ok,
            detail=outcome.detail,
            log_tail=outcome.log_tail,
            engine=engine,
            seconds=seconds,
            created_by=actor,
        )
        session.add(record)
        session.flush()
        result = TrialLoad(
            ref_of(row),
            record.model_digest,
            record.ok,
            record.detail,
            record.log_tail,
            record.engine,
            record.seconds,
            record.created_by,
            aware(record.created_at),
        )
        append_event(
            session,
            registry.db,
            settings,
            "model.trial_load",
            actor,
            result.ref,
            {k: v for k, v in result.to_json().items() if k != "log_tail"},
        )
    return result
