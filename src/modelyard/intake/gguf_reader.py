"""Read a GGUF file's metadata without trusting it.

The cheap header check runs in process (:mod:`gguf_header`); the full parse runs in a child
process (:mod:`gguf_probe`) under a memory cap, a CPU cap and a wall-clock timeout, so a
crafted file can neither take the caller down nor hang it. The child gets the open file
descriptor, not a path: it parses exactly the file the caller checked (at import, the copy
already landed in the blob store), whatever happens to any path meanwhile.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from modelyard.errors import UnsafeModel
from modelyard.intake.gguf_header import check_header


def read_gguf_metadata(
    path: Path, *, timeout_s: float, memory_mb: int, shown: str | None = None
) -> dict[str, Any]:
    """The metadata of the GGUF at ``path`` (opened once; see :func:`inspect_gguf`)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return inspect_gguf(fd, name=shown or path.name, timeout_s=timeout_s, memory_mb=memory_mb)
    finally:
        os.close(fd)


def inspect_gguf(fd: int, *, name: str, timeout_s: float, memory_mb: int) -> dict[str, Any]:
    """Check and parse the GGUF open as ``fd``; raises UnsafeModel naming ``name``."""
    header = check_header(fd, name)
    cpu_s = max(1, math.ceil(timeout_s))
    try:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelyard.intake.gguf_probe",
                str(fd),
                str(memory_mb),
                str(cpu_s),
            ],
            capture_output=True,
            timeout=timeout_s,
            check=False,
            pass_fds=(fd,),
        )
    except subprocess.TimeoutExpired as exc:
        raise UnsafeModel(
            f"{name}: reading its GGUF metadata took longer than {timeout_s:g}s; refused"
        ) from exc
    if completed.returncode != 0:
        reason = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = reason[-1] if reason else f"the parser died (exit {completed.returncode})"
        if completed.returncode < 0 or completed.returncode == 3:
            detail = f"the parser exceeded its memory or CPU limit ({detail})"
        raise UnsafeModel(f"{name} is not a valid GGUF file: {detail}")
    metadata: dict[str, Any] = json.loads(completed.stdout)
    metadata["gguf_version"] = header.version
    return metadata
