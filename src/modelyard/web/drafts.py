"""Form drafts: what someone typed into a form when their session had expired.

The POST is answered with a redirect to the login page; its fields are kept here, under a
random id that travels in the login URL, and filled back into the form after login. A draft
lives in ``<home>/console-drafts/<id>`` (folder 0700, file 0600), sealed with the console
key, for :data:`DRAFT_MINUTES` minutes, and is read once. It never holds the CSRF token or
anything secret (passwords, TOTP codes, tokens).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from modelyard.atomic_write import write_text
from modelyard.web.sealing import Sealer

DRAFT_MINUTES = 10
MAX_FIELDS = 64
MAX_VALUE_CHARS = 16 * 1024
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SECRET_WORDS = ("csrf", "password", "secret", "token", "totp")
PURPOSE = "form-draft"


def keepable(field: str) -> bool:
    """Whether a form field may be kept: never the CSRF token or a secret."""
    lowered = field.lower()
    return not any(word in lowered for word in _SECRET_WORDS)


class Drafts:
    def __init__(self, home: Path, sealer: Sealer, clock: Callable[[], datetime]) -> None:
        self.folder = home / "console-drafts"
        self.sealer = sealer
        self.clock = clock

    def save(self, action: str, fields: Iterable[tuple[str, str]]) -> str | None:
        """Keep ``fields`` typed into the form posted to ``action``; its id, or None when
        nothing worth keeping was typed."""
        kept: dict[str, str] = {}
        for name, value in fields:
            if keepable(name) and value and len(kept) < MAX_FIELDS and name not in kept:
                kept[name[:128]] = value[:MAX_VALUE_CHARS]
        if not kept:
            return None
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sweep()
        draft_id = secrets.token_urlsafe(18)
        now = self.clock()
        sealed = self.sealer.seal(
            PURPOSE,
            {"action": action, "fields": kept},
            expires_at=now + timedelta(minutes=DRAFT_MINUTES),
        )
        write_text(self.folder / draft_id, sealed, mode=0o600)
        return draft_id

    def take(self, draft_id: str | None) -> dict[str, Any] | None:
        """The draft ``{"action", "fields"}`` (removed as it is read), or None."""
        if not draft_id or not _ID.fullmatch(draft_id):
            return None
        path = self.folder / draft_id
        try:
            sealed = path.read_text()
        except FileNotFoundError:
            return None
        path.unlink(missing_ok=True)
        value = self.sealer.open(PURPOSE, sealed.strip(), now=self.clock())
        return value if isinstance(value, dict) else None

    def _sweep(self) -> None:
        """Remove drafts nobody came back for (expired, or unreadable)."""
        now = self.clock()
        for path in self.folder.iterdir():
            try:
                sealed = path.read_text()
            except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
                continue
            if self.sealer.open(PURPOSE, sealed.strip(), now=now) is None:
                path.unlink(missing_ok=True)
