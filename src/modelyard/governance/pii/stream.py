"""Streaming: scan generated text chunk by chunk, even when an entity or a placeholder is
split across chunks.

:class:`OutputFilter` holds back the last ``hold`` characters (longer than any entity it
must catch) and never cuts inside an entity or a placeholder it can see. It returns two
texts per chunk: what the caller may see (placeholders restored when asked) and what the
audit log may store (redacted, never restored).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.governance.pii.redact import PLACEHOLDER, Redactor


@dataclass(frozen=True)
class Filtered:
    to_caller: str
    to_log: str


MAX_PLACEHOLDER = 48
"""The longest placeholder the redactor writes (``<EMAIL_ADDRESS_12>``...), with room to spare."""
MAX_HOLD = 512
"""Never hold back more than this: the work per chunk stays O(chunk), whatever the model writes."""


class OutputFilter:
    def __init__(self, redactor: Redactor, *, scan: bool, restore: bool, hold: int = 64) -> None:
        self.redactor = redactor
        self.scan = scan
        self.restore = restore
        self.hold = hold
        self._buffer = ""

    def feed(self, chunk: str) -> Filtered:
        self._buffer += chunk
        if not self.scan and not self.restore:
            return self._emit(len(self._buffer))
        if len(self._buffer) <= self.hold:
            return Filtered("", "")
        cut = len(self._buffer) - self.hold
        spans = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(self._buffer)]
        last_open = self._buffer.rfind("<", max(0, cut - MAX_PLACEHOLDER), cut)
        if last_open != -1 and ">" not in self._buffer[last_open:cut]:
            spans.append((last_open, len(self._buffer)))  # maybe a placeholder still arriving
        if self.scan:
            spans.extend((e.start, e.end) for e in self.redactor.analyzer.find(self._buffer))
        for start, end in sorted(spans):
            if start < cut < end:
                cut = start
        return self._emit(max(cut, len(self._buffer) - MAX_HOLD))

    def flush(self) -> Filtered:
        return self._emit(len(self._buffer))

    def _emit(self, cut: int) -> Filtered:
        ready, self._buffer = self._buffer[:cut], self._buffer[cut:]
        if not ready:
            return Filtered("", "")
        logged = self.redactor.redact(ready, restorable=False) if self.scan else ready
        caller = self.redactor.restore(logged) if self.restore else logged
        return Filtered(caller, logged)


class LogOnlyFilter(OutputFilter):
    """``redact-logs``: the caller gets the text as generated, at once; the logged copy is
    redacted once, at the end, over the whole answer (so entities split across chunks are
    caught, and no scan runs per chunk)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(redactor, scan=True, restore=False)
        self._parts: list[str] = []

    def feed(self, chunk: str) -> Filtered:
        self._parts.append(chunk)
        return Filtered(chunk, "")

    def flush(self) -> Filtered:
        text, self._parts = "".join(self._parts), []
        return Filtered("", self.redactor.redact(text, restorable=False) if text else "")
