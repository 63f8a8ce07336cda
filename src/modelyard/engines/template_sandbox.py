"""Chat templates rendered in child processes, under a wall-clock timeout and a memory cap.

A model's Jinja chat template comes from its GGUF and is untrusted: besides the sandbox's
rules (:mod:`modelyard.engines.chat_jinja`), nothing inside Python can stop a template that
loops for hours or builds a gigabyte string. So templates never run on the caller's thread:
:class:`TemplateRenderer` keeps a few long-lived child processes (``python -m
modelyard.engines.template_sandbox``) and hands each chat to an idle one. A child caps its own
memory (``RLIMIT_DATA``) before it renders anything; the parent waits for the answer in the
calling thread (the gateway calls from a worker thread, so its event loop keeps serving) and
kills a child that runs past the timeout, starting a fresh one for the next chat.

Chats and answers travel as JSON lines over the child's stdin and stdout, never as pickles: a
child that went wrong can send the parent nothing but data. The child gets no ``MODELYARD_*``
environment (no database URL, no secrets), and its answer is size-checked before it is parsed.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import resource
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from modelyard.engines.base import PromptPart
from modelyard.engines.chat_jinja import DEFAULT_MAX_OUTPUT_CHARS
from modelyard.errors import EngineFault, InvalidInput, ModelyardError, Unavailable

DEFAULT_PROCESSES = 2
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MB = 512
STARTUP_TIMEOUT_S = 60.0
"""How long a fresh child may take to import jinja2 and say it is ready (not a render budget)."""

_ERRORS: dict[str, type[ModelyardError]] = {
    "InvalidInput": InvalidInput,
    "EngineFault": EngineFault,
}


def _line(message: Mapping[str, Any]) -> bytes:
    """One JSON line. Text that is not valid Unicode (a lone surrogate, which JSON allows)
    passes through unchanged: refusing it is the engine's job, where the request is audited."""
    return (
        json.dumps(message, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        + b"\n"
    )


class _ChildGone(Exception):
    """The child died, or answered something that is not an answer."""


class _TimedOut(_ChildGone):
    """The child did not answer by its deadline."""


class _Child:
    """One renderer process; used by one thread at a time."""

    def __init__(self, memory_mb: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.engines.template_sandbox", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._buffer = b""
        try:
            ready = self.read(time.monotonic() + STARTUP_TIMEOUT_S, 1024)
        except _ChildGone as exc:
            self.kill()
            raise EngineFault(f"the chat template renderer did not start: {exc}") from exc
        if ready.get("ready") is not True:
            self.kill()
            raise EngineFault("the chat template renderer did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, job: Mapping[str, Any]) -> None:
        line = _line(job)
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(line)
            stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _ChildGone(f"could not send the chat ({exc})") from exc

    def read(self, deadline: float, max_bytes: int) -> dict[str, Any]:
        """One JSON line from the child, by ``deadline``, of at most ``max_bytes``."""
        stdout: IO[bytes] | None = self.proc.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _TimedOut("timed out")
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise _ChildGone("exited")
            self._buffer += chunk
            if len(self._buffer) > max_bytes:
                raise _ChildGone("answered too much")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            answer = json.loads(line.decode("utf-8", "surrogatepass"))
        except ValueError as exc:
            raise _ChildGone("answered garbage") from exc
        if not isinstance(answer, dict):
            raise _ChildGone("answered garbage")
        return answer

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class TemplateRenderer:
    """A small pool of child processes that render chat templates under limits (thread-safe).

    ``render`` blocks the calling thread for at most about twice ``timeout_s`` (waiting for an
    idle child, then rendering); async callers run it with :func:`asyncio.to_thread`.
    """

    def __init__(
        self,
        *,
        processes: int = DEFAULT_PROCESSES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> None:
        self.processes = processes
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.max_output_chars = max_output_chars
        self._idle: list[_Child] = []
        self._busy = 0
        self._closed = False
        self._cond = threading.Condition()

    def render(
        self,
        template: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        model: str,
    ) -> tuple[PromptPart, ...]:
        job = {
            "template": template,
            "messages": list(messages),
            "tools": list(tools) if tools else None,
            "model": model,
            "now": datetime.now(UTC).isoformat(),
            "max_output_chars": self.max_output_chars,
        }
        child = self._acquire(model)
        healthy = False
        try:
            answer = self._run(child, job, model)
            healthy = answer.get("retire") is not True
        finally:
            self._release(child, healthy)
        return _parts_or_raise(answer, model)

    def _run(self, child: _Child, job: dict[str, Any], model: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        # JSON of the parts: both renderings' text, escaped, plus framing
        max_bytes = 8 * self.max_output_chars + (1 << 20)
        try:
            child.send(job)
            return child.read(deadline, max_bytes)
        except _TimedOut as exc:
            raise InvalidInput(
                f"the chat template of {model} ran past its {self.timeout_s:g} s rendering "
                "budget for these messages and was stopped; the request was refused",
                param="messages",
                code="template_budget_exceeded",
            ) from exc
        except _ChildGone as exc:
            raise InvalidInput(
                f"the chat template of {model} went over its rendering budget for these "
                f"messages (its renderer {exc}; memory cap {self.memory_mb} MB); the request "
                "was refused",
                param="messages",
                code="template_budget_exceeded",
            ) from exc

    def _acquire(self, model: str) -> _Child:
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise Unavailable("the chat template renderer is shutting down")
                while self._idle:
                    child = self._idle.pop()
                    if child.alive():
                        self._busy += 1
                        return child
                    child.kill()
                if self._busy < self.processes:
                    self._busy += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable(
                        f"every chat template renderer is busy; could not render for {model}",
                        code="template_renderers_busy",
                        retry_after_s=1,
                    )
                self._cond.wait(left)
        try:
            return _Child(self.memory_mb)  # started outside the lock: it takes a moment
        except BaseException:
            with self._cond:
                self._busy -= 1
                self._cond.notify()
            raise

    def _release(self, child: _Child, healthy: bool) -> None:
        """Back to the idle list; a child that failed, died or outlived the pool is stopped."""
        with self._cond:
            self._busy -= 1
            keep = healthy and not self._closed and child.alive()
            if keep:
                self._idle.append(child)
            self._cond.notify()
        if not keep:
            child.kill()

    def close(self) -> None:
        """Stop every idle child; busy ones stop when their render returns."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for child in idle:
            child.kill()


def _parts_or_raise(answer: Mapping[str, Any], model: str) -> tuple[PromptPart, ...]:
    error = answer.get("error")
    if isinstance(error, dict):
        kind = _ERRORS.get(str(error.get("kind")), EngineFault)
        message = str(error.get("message") or f"the chat template of {model} failed")
        param = error.get("param")
        code = error.get("code")
        raise kind(
            message,
            param=param if isinstance(param, str) else None,
            code=code if isinstance(code, str) else None,
        )
    parts = answer.get("parts")
    if not isinstance(parts, list):
        raise EngineFault(f"the chat template renderer gave no answer for {model}")
    out = []
    for item in parts:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], bool)
        ):
            raise EngineFault(f"the chat template renderer answered garbage for {model}")
        out.append(PromptPart(item[0], special=item[1]))
    return tuple(out)


_shared_lock = threading.Lock()


@functools.cache
def _shared() -> TemplateRenderer:
    renderer = TemplateRenderer()
    atexit.register(renderer.close)
    return renderer


def shared_renderer() -> TemplateRenderer:
    """The process's renderer with default limits, for callers without settings (evaluation,
    tune); started on first use, stopped at exit. The gateway configures its own."""
    with _shared_lock:
        return _shared()


# --- the child -------------------------------------------------------------------------------


def _answer(job: Mapping[str, Any]) -> dict[str, Any]:
    from modelyard.engines.chat_jinja import render_template_parts

    model = str(job.get("model") or "the model")
    try:
        parts = render_template_parts(
            str(job["template"]),
            list(job["messages"]),
            job.get("tools"),
            model,
            max_output_chars=int(job["max_output_chars"]),
            now=datetime.fromisoformat(str(job["now"])),
        )
    except (InvalidInput, EngineFault) as exc:
        return {
            "error": {
                "kind": type(exc).__name__,
                "message": exc.message,
                "param": exc.param,
                "code": exc.code,
            }
        }
    except RecursionError:
        return _budget_error(model, "it recursed too deeply")
    return {"parts": [[p.text, p.special] for p in parts]}


def _budget_error(model: str, why: str) -> dict[str, Any]:
    return {
        "error": {
            "kind": "InvalidInput",
            "message": f"the chat template of {model} went over its rendering budget for these "
            f"messages ({why}); the request was refused",
            "param": "messages",
            "code": "template_budget_exceeded",
        }
    }


def _child_main(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    import jinja2.sandbox  # noqa: F401 - imported before "ready", so renders start warm

    from modelyard.engines import chat_jinja  # noqa: F401

    out = sys.stdout.buffer

    def reply(answer: Mapping[str, Any]) -> None:
        out.write(_line(answer))
        out.flush()

    reply({"ready": True})
    for line in sys.stdin.buffer:
        model = "the model"
        try:
            job = json.loads(line.decode("utf-8", "surrogatepass"))
            model = str(job.get("model") or model)
            answer = _answer(job)
        except MemoryError:
            # a process that hit its memory cap is not reused: it says so, and ends
            reply({**_budget_error(model, "it ran out of memory"), "retire": True})
            return
        reply(answer)


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
