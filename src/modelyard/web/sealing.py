"""Small secrets the console hands to the browser or parks on disk, sealed with AES-GCM.

The key is ``<home>/console-secret`` (32 random bytes, mode 0600), made on first use with
:func:`modelyard.atomic_write.create_new`, so two processes starting together agree on one
key. A sealed value names its purpose (bound as associated data) and its expiry, so a value
sealed for one use (a pending OIDC login) is refused for another (a flash message), and an
old one is refused once it has expired.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelyard.atomic_write import create_new
from modelyard.errors import StoreFault

KEY_BYTES = 32
NONCE_BYTES = 12


def secret_path(home: Path) -> Path:
    return home / "console-secret"


def load_or_create_key(home: Path) -> bytes:
    """The console's sealing key, created (0600) if this home has none yet."""
    path = secret_path(home)
    home.mkdir(parents=True, exist_ok=True)
    create_new(path, secrets.token_bytes(KEY_BYTES), mode=0o600)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise StoreFault(f"cannot read the console secret {path}: {exc}") from exc
    if len(key) != KEY_BYTES:
        raise StoreFault(f"the console secret {path} is damaged: delete it to make a new one")
    return key


class Sealer:
    """Seals and opens JSON values with the console's key (loaded on first use)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._aead: AESGCM | None = None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            self._aead = AESGCM(load_or_create_key(self.home))
        return self._aead

    def seal(self, purpose: str, value: Any, *, expires_at: datetime) -> str:
        payload = json.dumps({"exp": expires_at.timestamp(), "value": value}).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, payload, purpose.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, purpose: str, token: str | None, *, now: datetime) -> Any | None:
        """The value sealed for ``purpose``, or None (absent, forged, other purpose, expired)."""
        if not token or len(token) > 64 * 1024:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= NONCE_BYTES:
            return None
        try:
            payload = self._cipher().decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
        except InvalidTag:
            return None
        data = json.loads(payload)
        if not isinstance(data, dict) or float(data.get("exp", 0)) <= now.timestamp():
            return None
        return data.get("value")
