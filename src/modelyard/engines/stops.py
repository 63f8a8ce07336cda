"""Stop strings over a stream of text: emit what is safe, hold back what might start a stop."""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add text; returns ``(safe_to_emit, stopped)``."""
        self.pending += text
        if self.stops:
            cut = min((i for s in self.stops if (i := self.pending.find(s)) >= 0), default=-1)
            if cut >= 0:
                emit, self.pending = self.pending[:cut], ""
                return emit, True
        if self.hold == 0:
            emit, self.pending = self.pending, ""
        else:
            keep = min(len(self.pending), self.hold)
            emit, self.pending = self.pending[: len(self.pending) - keep], self.pending[-keep:]
        return emit, False

    def flush(self) -> str:
        emit, self.pending = self.pending, ""
        return emit
