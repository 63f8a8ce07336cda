"""One engine worker: a ``llama-server`` process serving one model version.

What the process gets, and nothing more:

* the model file as an inherited, read-only file descriptor (``/proc/self/fd/N``), so it
  needs no access to the blob store;
* a private working directory (mode 0700) holding its Unix socket, so it listens on no
  TCP port, and a per-process secret (``LLAMA_API_KEY``) that every request must carry;
* a minimal environment: no database URL, no Redis URL, no path to the audit key;
* when modelyard runs as root, an unprivileged user (``worker_user``, default ``nobody``);
* optionally (trial loads) resource limits: address space, CPU time, no core dumps.

Before the process starts, the model file is opened once and the open descriptor is handed
to a ``check`` (the load check in ``load_check.py`` hashes it); the same descriptor is the one
the worker inherits, so nothing can swap the file between the check and the load.

Its stderr goes to ``<home>/run/workers/<digest>.log`` (warnings and errors only), whose
tail explains a worker that failed to load.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pwd
import resource
import secrets
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelyard.engines.binary import ServerBinary
from modelyard.errors import Unavailable

LOG_TAIL_BYTES = 4096
_PR_SET_PDEATHSIG = 1


class LoadRefused(Unavailable):
    """The load check refused the model file: 503 ``model_unavailable``, no process started."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="model_unavailable", retry_after_s=30)


@dataclass(frozen=True)
class ResourceLimits:
    """Hard limits set in the worker before it runs llama-server (a trial load's sandbox)."""

    address_space_bytes: int
    cpu_seconds: int

    def pairs(self) -> list[tuple[int, int]]:
        return [
            (resource.RLIMIT_AS, self.address_space_bytes),
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_CORE, 0),
        ]


def _die_with_parent(
    limits: ResourceLimits | None = None, *, idle_priority: bool = False
) -> Callable[[], None]:
    """A pre-exec hook: the worker is killed when the process that started it dies, so a
    gateway that crashes (or is killed) leaves no engine worker behind; with ``limits``, it
    also sets those resource limits; with ``idle_priority``, the kernel's idle scheduling
    class (``SCHED_IDLE``, which every thread llama-server starts inherits): it runs only on
    CPU time no normal process wants. Resolved before the fork; the child only makes system
    calls."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    pairs = limits.pairs() if limits is not None else []
    setrlimit = resource.setrlimit
    idle_param = os.sched_param(0)

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        for which, value in pairs:
            setrlimit(which, (value, value))
        if idle_priority:
            os.sched_setscheduler(0, os.SCHED_IDLE, idle_param)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return hook


@dataclass(frozen=True)
class WorkerOptions:
    """How every worker is started (from Settings; see ``worker_options.py``)."""

    slots: int
    ctx_per_slot: int
    threads: int
    kv_cache_type: str
    gpu_layers: int
    batch_size: int
    prompt_cache_mb: int
    user: str | None
    """Drop to this user (only when running as root)."""
    start_timeout_s: float
    weight_repack: bool = False
    """llama.cpp's CPU weight repacking (``--repack``); off by default (see Settings)."""
    slot_prompt_similarity: float = 0.5
    """Prefix reuse: a request goes to the idle slot whose cached prompt shares the longest
    prefix with it, when that prefix is more than this share of the prompt
    (``--slot-prompt-similarity``); otherwise to the least recently used slot, which first
    takes the best-matching prompt from the host-memory prompt cache. 0 turns it off."""
    swa_full: bool = False
    """Keep the whole sliding-window-attention cache (``--swa-full``), so that prefixes
    shorter than the model's window are reused too; costs KV memory (see Settings)."""
    idle_priority: bool = False
    """Run at the kernel's idle scheduling priority (``SCHED_IDLE``): batch workers, which
    must not take CPU time from interactive requests (docs/batch.md)."""


def worker_args(
    binary: Path, options: WorkerOptions, *, model: str, socket: Path, ctx_per_slot: int
) -> list[str]:
    """The llama-server command line (continuous batching over ``slots`` sequences)."""
    return [
        str(binary),
        "--model", model,
        "--host", str(socket),
        "--parallel", str(options.slots),
        "--ctx-size", str(options.slots * ctx_per_slot),
        "--no-kv-unified",
        "--cont-batching",
        "--threads", str(options.threads),
        "--threads-batch", str(options.threads),
        "--cache-type-k", options.kv_cache_type,
        "--cache-type-v", options.kv_cache_type,
        "--batch-size", str(options.batch_size),
        "--cache-ram", str(options.prompt_cache_mb),
        "--slot-prompt-similarity", f"{options.slot_prompt_similarity:g}",
        *(["--swa-full"] if options.swa_full else []),
        "--no-context-shift",
        "--no-webui",
        "--no-slots",
        "--log-verbosity", "2",
        *([] if options.weight_repack else ["--no-repack"]),
        *(["--n-gpu-layers", str(options.gpu_layers)] if options.gpu_layers else []),
    ]  # fmt: skip


class WorkerProcess:
    """Start, watch and stop one llama-server. Async: the gateway's event loop owns it."""

    def __init__(
        self,
        binary: ServerBinary,
        options: WorkerOptions,
        *,
        model_path: Path,
        ctx_per_slot: int,
        log_path: Path,
        check: Callable[[int], None] | None = None,
        limits: ResourceLimits | None = None,
    ) -> None:
        self.binary = binary
        self.options = options
        self.model_path = model_path
        self.ctx_per_slot = ctx_per_slot
        self.log_path = log_path
        self.check = check
        """Called (in a thread) with the model's open descriptor before the worker starts;
        raising refuses the load."""
        self.limits = limits
        self.secret = secrets.token_urlsafe(32)
        self.workdir: Path | None = None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def socket(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "engine.sock"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _drop_to(self) -> pwd.struct_passwd | None:
        """The account to run as: required when running as root (never run a model as root)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.options.user or "")
        except KeyError:
            raise OSError(
                f"running as root, engine workers must drop to an unprivileged user, and "
                f"MODELYARD_WORKER_USER={self.options.user!r} does not exist"
            ) from None

    async def start(self) -> None:
        account = self._drop_to()
        model_fd = os.open(self.model_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if self.check is not None:
                await asyncio.to_thread(self.check, model_fd)
            await self._spawn(model_fd, account)
        finally:
            os.close(model_fd)

    async def _spawn(self, model_fd: int, account: pwd.struct_passwd | None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="modelyard-worker-"))
        os.chmod(self.workdir, 0o700)
        if account is not None:
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir),
            "LLAMA_API_KEY": self.secret,
            "LANG": "C.UTF-8",
            "GGML_NO_BACKTRACE": "1",  # an assert logs its message, not a debugger's backtrace
        }
        args = worker_args(
            self.binary.path,
            self.options,
            model=f"/proc/self/fd/{model_fd}",
            socket=self.socket,
            ctx_per_slot=self.ctx_per_slot,
        )
        try:
            self.process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                env=env,
                pass_fds=(model_fd,),
                preexec_fn=_die_with_parent(self.limits, idle_priority=self.options.idle_priority),
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
                start_new_session=True,
            )
        finally:
            log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, grace_s: float = 5.0) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self) -> str:
        """The end of the worker's log: why it failed to load, or its last warnings."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                log.seek(max(0, size - LOG_TAIL_BYTES))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-12:])
