"""Streaming: redact generated text chunk by chunk without ever letting part of an entity out.

:class:`OutputFilter` keeps the text it has not released yet (the *buffer*) and the last
:data:`CONTEXT` characters it has released (raw, for detectors that look to the left). On
each chunk it analyses context + buffer and releases the buffer up to a *cut*: the start of
the *open tail* (see :func:`open_tail`: the trailing tokens that more text could still turn
into, or extend, an entity or a placeholder), moved back to the start of any entity that
reaches into that tail or across the cut. What it releases is redacted with the entities of
that analysis, so a released piece never ends inside an entity.

Equality with the non-streaming redactor: the caller receives exactly
``restore(redact(whole answer))`` provided (a) no detector looks more than :data:`CONTEXT`
characters to the left of what it finds or past the end of the open tail to its right
(true of modelyard's detectors: ids.LOOKBEHIND, names.LOOKBEHIND, checksums.LOOKBEHIND), and
(b) the held text never exceeds ``max_hold``. When it would, the held text is replaced by a
``<REDACTED_n>`` placeholder and the rest of that unbroken token is dropped (never
released): the output then differs from the non-streaming redaction, on the safe side.

The hold-back is bounded: at most ``max_hold`` characters (plus the incoming chunk while it
is analysed) and :data:`CONTEXT` characters of context per stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.governance.pii.entities import Entity
from modelyard.governance.pii.redact import Redactor


@dataclass(frozen=True)
class Filtered:
    to_caller: str
    to_log: str


CONTEXT = 96
"""Released text kept (raw) so that detectors see their left-hand cues; ≥ every detector's
look-behind (ids: 60, names: 48, checksums: 12)."""
MAX_HOLD = 1024
"""Never hold back more than this many characters per stream."""
MAX_TOKEN = 320
"""The longest single-token entity (an e-mail address: 64 + 1 + 253 characters, rounded up);
a longer trailing token is held only for its last ``MAX_TOKEN`` characters."""
MAX_JOINED = 12
"""At most this many earlier tokens join the last one in the open tail (phones, IBAN groups,
spaced IDs, names: all have fewer)."""
MAX_JOINED_CHARS = 160

_TOKEN = re.compile(r"\S+")
_CLOSING = frozenset(',;!?"”“]>}|')
_PARTICLES = frozenset(
    ["van", "der", "den", "von", "de", "la", "del", "della", "di", "da", "du", "le", "ten", "ter"]
)
# Words and marks libphonenumber accepts between a number and its extension
# ("555-0123, ext. 12", "0130 x 5", "… int. 7", "… #12").
_EXTENSION = frozenset(["ext", "extn", "extension", "x", "int", "anexo", "доб", "tel", "#", ""])
_SEPARATORS = ".,:;/~\u2013-"


def _has_digit(token: str) -> bool:
    return any(ch.isdigit() for ch in token)


def _closes(token: str) -> bool:
    """Whether ``token`` ends what could be an entity: "said," or "…com>"; not a digit group
    or an extension word, which a phone extension may still follow ("0130, ext. 5")."""
    if token[-1] not in _CLOSING:
        return False
    return not (_has_digit(token) or token.lower().rstrip(_SEPARATORS) in _EXTENSION)


def _joinable(token: str, left: str, right: str) -> bool:
    """Whether ``token`` may be part of the same entity as the open tail to its right."""
    if len(token) > 40 or _closes(token):
        return False
    bare = token.lower().rstrip(_SEPARATORS)
    if bare in _EXTENSION or bare in _PARTICLES:
        return True
    if token[-1] in ".:" and not _has_digit(token):
        return False  # "said." / "Note:" end a sentence or a label
    if _has_digit(token) or token[0] in "+(" or token[0].isupper():
        return True  # digit groups, phone pieces, IBAN/NINO letter groups, names
    # a short letter group inside an IBAN or NINO written in lower case: "gb82 west 1234"
    return len(token) <= 4 and token.isalpha() and (_has_digit(left) or _has_digit(right))


def open_tail(text: str) -> int:
    """Where the trailing text that more input could still make (part of) an entity or a
    placeholder begins; ``len(text)`` when nothing is open.

    The last token is always open (a word may be the start of an e-mail address, a digit
    group the start of a card number, ``<EMAIL_`` the start of a placeholder); earlier tokens
    on the same line join it while they could belong to one multi-token entity with it: digit
    groups (phones, cards, spaced IBANs and IDs), capitalised words and name particles
    (names, IBAN letter groups), phone extensions. A line break, or a token ending with
    ``,;!?"]>}|``, closes everything before it.
    """
    line_start = max(text.rfind("\n"), text.rfind("\r")) + 1
    window_start = max(line_start, len(text) - MAX_TOKEN - MAX_JOINED_CHARS - 64)
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(text, window_start)]
    if not tokens:
        return len(text)
    last_start, last_end = tokens[-1]
    if last_end == len(text):
        tail = max(last_start, last_end - MAX_TOKEN)
    elif _closes(text[last_start:last_end]):
        return len(text)  # "…, " or "…> ": closed
    else:
        tail = last_start  # complete, but the next token may still join it
    joined = 0
    for i in range(len(tokens) - 2, -1, -1):
        start, end = tokens[i]
        token = text[start:end]
        left = text[tokens[i - 1][0] : tokens[i - 1][1]] if i > 0 else ""
        right = text[tokens[i + 1][0] : tokens[i + 1][1]]
        if (
            joined >= MAX_JOINED
            or tail - start > MAX_JOINED_CHARS + MAX_TOKEN
            or not _joinable(token, left, right)
        ):
            break
        tail, joined = start, joined + 1
    return tail


class OutputFilter:
    def __init__(
        self, redactor: Redactor, *, scan: bool, restore: bool, max_hold: int = MAX_HOLD
    ) -> None:
        if max_hold < 1:
            raise ValueError("max_hold must be positive")
        self.redactor = redactor
        self.scan = scan
        self.restore = restore
        self.max_hold = max_hold
        self._buffer = ""
        self._context = ""
        self._dropping = False  # after an overflow: drop the rest of the unbroken token

    @property
    def held(self) -> tuple[int, int]:
        """``(characters held back, characters of context kept)``: the memory of this stream."""
        return len(self._buffer), len(self._context)

    def feed(self, chunk: str) -> Filtered:
        if not self.scan and not self.restore:
            return Filtered(chunk, chunk)
        if self._dropping:
            chunk = self._drop(chunk)
        self._buffer += chunk
        if not any(ch.isspace() for ch in chunk) and len(self._buffer) <= self.max_hold:
            return Filtered("", "")  # the last token grew: nothing new can be released
        return self._release(final=False)

    def flush(self) -> Filtered:
        if not self.scan and not self.restore:
            return Filtered("", "")
        out = self._release(final=True)
        self._buffer, self._context, self._dropping = "", "", False
        return out

    def _drop(self, chunk: str) -> str:
        for i, ch in enumerate(chunk):
            if ch.isspace():
                self._dropping = False
                return chunk[i:]
        return ""

    def _release(self, *, final: bool) -> Filtered:
        window = self._context + self._buffer
        base = len(self._context)
        entities = self._entities(window, base)
        cut = len(window) if final else self._cut(window, base, entities)
        overflow = len(window) - cut > self.max_hold
        if overflow:
            cut = max(base, cut)
        ready = [e for e in entities if e.end <= cut]
        out = self._emit(window, base, cut, ready)
        if overflow:
            placeholder = self.redactor.mark("REDACTED")
            out = Filtered(out.to_caller + placeholder, out.to_log + placeholder)
            self._dropping = not window[-1].isspace()
            released_raw = window[base:]
            self._buffer = ""
        else:
            released_raw = window[base:cut]
            self._buffer = window[cut:]
        self._context = _trim_context((self._context + released_raw)[-CONTEXT:])
        return out

    def _entities(self, window: str, base: int) -> list[Entity]:
        if not self.scan:
            return []
        found: list[Entity] = []
        for e in self.redactor.analyzer.find(window):
            if e.end <= base:
                continue  # released earlier
            if e.start < base:
                # Reaches back into released text: cannot happen with the detectors' bounds;
                # if it ever does, at least its unreleased part is redacted.
                e = Entity(e.type, base, e.end, window[base : e.end])
            found.append(e)
        return found

    @staticmethod
    def _cut(window: str, base: int, entities: list[Entity]) -> int:
        cut = max(base, open_tail(window))
        moved = True
        while moved:
            moved = False
            for e in entities:
                if e.start < cut < e.end or (e.start < cut and e.end >= len(window)):
                    cut, moved = e.start, True
        return cut

    def _emit(self, window: str, base: int, cut: int, entities: list[Entity]) -> Filtered:
        if cut <= base:
            return Filtered("", "")
        shifted = [Entity(e.type, e.start - base, e.end - base, e.text) for e in entities]
        logged = self.redactor.redact_entities(window[base:cut], shifted, restorable=False)
        caller = self.redactor.restore(logged) if self.restore else logged
        return Filtered(caller, logged)


def _trim_context(context: str) -> str:
    """Start the kept context at a token boundary (never inside a word)."""
    if len(context) < CONTEXT:
        return context
    space = next((i for i, ch in enumerate(context) if ch.isspace()), len(context))
    return context[space:]


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
