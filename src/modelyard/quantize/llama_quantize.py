"""Run llama.cpp's quantizer (``llama_model_quantize``) on one GGUF file.

llama.cpp reports every tensor it converts (and every fallback type it picks) on stderr;
that output is captured for the duration of the call, and its last line becomes part of the
error message when quantization fails.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from modelyard.errors import EngineFault
from modelyard.quantize.levels import ftype_of
from modelyard.store.disk_space import free_bytes
from modelyard.tune.native_log import captured_stderr


def quantize_file(
    source: Path, target: Path, level: str, *, allow_requantize: bool, threads: int | None
) -> None:
    """Write ``source`` quantized to ``level`` at ``target`` (llama.cpp writes it directly)."""
    import llama_cpp

    # Through the Python logger llama.cpp would print every tensor; keep errors only.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_of(level)
    params.nthread = threads or os.cpu_count() or 1
    params.allow_requantize = allow_requantize
    with captured_stderr() as log:
        status = llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params)
        )
    if status != 0 or not target.is_file() or target.stat().st_size == 0:
        detail = f": {log.tail()}" if log.tail() else ""
        free = free_bytes(target.parent)
        if free < source.stat().st_size:  # llama.cpp's own message may not say so
            detail += f" (the disk holding {target.parent} is nearly full: {free:,} bytes free)"
        raise EngineFault(
            f"llama.cpp could not quantize {source.name} to {level} (status {status}){detail}"
        )
