"""The PII policy of a request, applied to its prompt texts and its answer.

=============  ======================  =========================  ==========================
policy         the model sees          the caller gets            the audit log stores
=============  ======================  =========================  ==========================
off            the text                the answer                 the text (encrypted)
redact-logs    the text                the answer                 redacted text (encrypted)
redact         placeholders            answer, own values         redacted text (encrypted)
                                       restored; PII the model
                                       invented stays redacted
block          — (400 if PII found)    answer, PII the model      redacted text (encrypted)
                                       invented redacted
=============  ======================  =========================  ==========================
"""

from __future__ import annotations

from collections.abc import Sequence

from modelyard.errors import InvalidInput
from modelyard.governance.pii.analyzer import Analyzer
from modelyard.governance.pii.entities import ENTITY_TYPES
from modelyard.governance.pii.redact import Redactor
from modelyard.governance.pii.stream import LogOnlyFilter, OutputFilter
from modelyard.governance.scopes import PII_POLICIES


class PiiBlocked(InvalidInput):
    """The request carries personal data and the key's policy is ``block`` (400)."""

    def __init__(self, types: Sequence[str]) -> None:
        super().__init__(
            f"the request contains personal data ({', '.join(types)}) and this key's PII "
            "policy blocks it",
            code="pii_blocked",
        )
        self.types = tuple(types)


class PiiGuard:
    """Apply one policy to one request. Create one per request."""

    def __init__(self, policy: str, analyzer: Analyzer) -> None:
        if policy not in PII_POLICIES:
            raise InvalidInput(f"unknown PII policy {policy!r}")
        self.policy = policy
        self.redactor = Redactor(analyzer)

    @property
    def text_mode(self) -> str:
        return "full" if self.policy == "off" else "redacted"

    def inbound(self, texts: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(what the model sees, what the log stores)`` for the request's texts.

        Raises :class:`PiiBlocked` naming the entity types (never the values) under ``block``.
        """
        if self.policy == "off":
            return list(texts), list(texts)
        logged = [self.redactor.redact(text) for text in texts]
        if self.policy == "block" and self.redactor.found_types:
            raise PiiBlocked([t for t in ENTITY_TYPES if t in self.redactor.found_types])
        model_sees = logged if self.policy == "redact" else list(texts)
        return model_sees, logged

    def output(self) -> OutputFilter:
        if self.policy == "redact-logs":
            # The caller sees the answer as generated; only the logged copy is redacted.
            return LogOnlyFilter(self.redactor)
        return OutputFilter(
            self.redactor, scan=self.policy != "off", restore=self.policy == "redact"
        )
