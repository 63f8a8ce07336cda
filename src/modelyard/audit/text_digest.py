"""Keyed digests of audit text (``MODELYARD_AUDIT_STORE_TEXT=hash``) and checking them.

A plain SHA-256 of a prompt can be confirmed by anyone who guesses the prompt ("was the
question about patient X?"). Records written in hash mode therefore carry
``HMAC-SHA-256(text.secret, text)``, labelled ``text_mode = "hmac-sha256"``; the secret is
32 random bytes in ``<home>/audit/text.secret`` (mode 0600), apart from ``subject.secret``
so that handing one to an auditor does not hand over the other. Records written before
carry ``text_mode = "hash"`` and a plain SHA-256; they keep that label (the chain covers
it) and :func:`match_record` still checks them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from modelyard.audit.canonical import sha256_text
from modelyard.audit.connection import audit_engine
from modelyard.audit.secrets import _read, _write_private
from modelyard.config import Settings
from modelyard.errors import InvalidInput, NotFound
from modelyard.store.audit_tables import AuditRecordRow
from modelyard.store.database import Database

HMAC_MODE = "hmac-sha256"
LEGACY_MODE = "hash"
"""Plain SHA-256, as records written before keyed digests carry it."""


def text_secret(settings: Settings, *, create: bool = True) -> bytes:
    """The deployment's text-digest key (made on first use unless ``create`` is False)."""
    path = settings.audit_dir / "text.secret"
    if not path.exists():
        if not create:
            raise NotFound(f"no text-digest secret at {path}: copy the deployment's text.secret")
        _write_private(path, secrets.token_bytes(32))
    return _read(path)


def text_hmac(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Match:
    seq: int
    algorithm: str
    prompt: bool | None
    """True/False: the candidate is/is not the stored prompt; None: no prompt digest stored."""
    response: bool | None

    @property
    def matched(self) -> bool:
        return bool(self.prompt or self.response)

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "algorithm": self.algorithm,
            "prompt": self.prompt,
            "response": self.response,
            "matched": self.matched,
        }


def match_record(db: Database, settings: Settings, seq: int, text: str) -> Match:
    """Whether ``text`` is the prompt or the answer that record ``seq`` stores a digest of."""
    engine = audit_engine(db)
    try:
        with Session(engine) as session:
            row = session.get(AuditRecordRow, seq)
            if row is None:
                raise NotFound(f"no audit record {seq}")
            mode, prompt_digest, response_digest = (
                row.text_mode,
                row.prompt_sha256,
                row.response_sha256,
            )
    finally:
        if engine is not db.engine:
            engine.dispose()
    if mode == HMAC_MODE:
        candidate = text_hmac(text_secret(settings, create=False), text)
    elif mode == LEGACY_MODE:
        candidate = sha256_text(text)
    else:
        raise InvalidInput(
            f"audit record {seq} stores no text digest (text mode {mode!r}); "
            "use `modelyard audit show` for records that store text"
        )

    def same(stored: str | None) -> bool | None:
        return None if stored is None else hmac.compare_digest(stored, candidate)

    algorithm = "sha256" if mode == LEGACY_MODE else HMAC_MODE
    return Match(seq, algorithm, same(prompt_digest), same(response_digest))
