"""Capture what native code (llama.cpp) writes to the process's stderr, for one call.

llama.cpp prints loader and quantizer chatter straight to file descriptor 2; a command's
terminal should show modelyard's own progress only. The captured text is returned to the
caller, which puts its tail into an error message when the call fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


class CapturedLog:
    def __init__(self) -> None:
        self.text = ""

    def tail(self, lines: int = 1) -> str:
        return "\n".join(self.text.strip().splitlines()[-lines:])


@contextmanager
def captured_stderr() -> Iterator[CapturedLog]:
    captured = CapturedLog()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(prefix="modelyard-native-") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            captured.text = log.read()[-4000:].decode("utf-8", "replace")
