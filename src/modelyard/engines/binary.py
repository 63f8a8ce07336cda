"""Find the ``llama-server`` binary that engine workers run, and say what it is.

``make`` builds it once with ``scripts/build-llama-cpp.sh`` from the llama.cpp source that the
pinned llama-cpp-python release vendors, into a cache outside the clone. This module finds
that build the same way the script names it (version, backend, CPU), or takes the path the
settings give (``MODELYARD_LLAMA_SERVER`` / ``MODELYARD_LLAMA_CPP_DIR``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from modelyard.config import Settings
from modelyard.errors import Unavailable

LLAMA_CPP_VERSION = "0.3.36"
"""The llama-cpp-python release whose vendored llama.cpp is built (constraints.txt pins it)."""
BUILD_RECIPE = "r2"
"""scripts/build-llama-cpp.sh's RECIPE: part of the cache folder's name."""


@dataclass(frozen=True)
class ServerBinary:
    path: Path
    version: str
    """llama.cpp's own version line (build number and commit)."""
    backend: str
    """``cpu`` or ``cuda``."""
    source: str
    """Where it was built from (the llama-cpp-python sdist and its SHA-256)."""

    @property
    def gpu(self) -> bool:
        return self.backend != "cpu"

    def describe(self) -> str:
        return f"{self.path} ({self.version or 'version unknown'}, backend {self.backend})"


def _cache_roots(override: Path | None) -> list[Path]:
    roots = [override] if override is not None else []
    return [*roots, Path("/var/cache/modelyard"), Path.home() / ".cache" / "modelyard"]


def _cpu_key() -> str:
    """What the build script keys the cache by: a hash of the CPU's flags (it builds for them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            line = next((row for row in info if row.startswith("flags")), "")
    except OSError:
        line = ""
    return hashlib.sha256(line.encode()).hexdigest()[:8]


def _has_gpu() -> bool:
    return shutil.which("nvcc") is not None and shutil.which("nvidia-smi") is not None


def default_llama_cpp_dirs(cache: Path | None = None) -> list[Path]:
    """The cache folders the build script would use here, best match first."""
    backends = ["cuda", "cpu"] if _has_gpu() else ["cpu"]
    key = _cpu_key()
    stem = f"llama.cpp-{LLAMA_CPP_VERSION}-{BUILD_RECIPE}"
    exact = [root / f"{stem}-{b}-{key}" for root in _cache_roots(cache) for b in backends]
    loose = [
        found
        for root in _cache_roots(cache)
        if root.is_dir()
        for found in sorted(root.glob(f"{stem}-*"))
    ]
    return [*exact, *(p for p in loose if p not in exact)]


def read_build_info(folder: Path) -> dict[str, str]:
    try:
        text = (folder / "BUILD_INFO").read_text(encoding="utf-8")
    except OSError:
        return {}
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key.strip()] = value.strip()
    return info


def find_llama_server(settings: Settings) -> ServerBinary:
    """The llama-server to run, or ``Unavailable`` saying how to build one."""
    if settings.llama_server is not None:
        candidates = [settings.llama_server]
    elif settings.llama_cpp_dir is not None:
        candidates = [settings.llama_cpp_dir / "llama-server"]
    else:
        dirs = default_llama_cpp_dirs(settings.llama_cpp_cache)
        candidates = [folder / "llama-server" for folder in dirs]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            info = read_build_info(path.parent)
            return ServerBinary(
                path=path,
                version=info.get("server_version", ""),
                backend=info.get("backend", "cpu"),
                source=(
                    f"llama_cpp_python {info['llama_cpp_python']} sdist "
                    f"(sha256 {info.get('sdist_sha256', '?')[:12]}…)"
                    if "llama_cpp_python" in info
                    else "not built by modelyard"
                ),
            )
    looked = ", ".join(str(p) for p in candidates) or "nowhere"
    raise Unavailable(
        "no llama-server binary for the engine workers (looked at "
        f"{looked}); build it with `make install` or scripts/build-llama-cpp.sh, or set "
        "MODELYARD_LLAMA_SERVER",
        code="engine_binary_missing",
    )
