"""AES-256-GCM for audit text, bound to the record and field it belongs to (AAD)."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def new_key() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


def encrypt(key_b64: str, plaintext: str, aad: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(base64.b64decode(key_b64)).encrypt(
        nonce, plaintext.encode("utf-8"), aad.encode("utf-8")
    )
    return base64.b64encode(nonce + sealed).decode("ascii")


def decrypt(key_b64: str, token: str, aad: str) -> str | None:
    """The plaintext, or None when the token was not sealed under this key and AAD."""
    raw = base64.b64decode(token)
    try:
        plain = AESGCM(base64.b64decode(key_b64)).decrypt(raw[:12], raw[12:], aad.encode("utf-8"))
    except InvalidTag:
        return None
    return plain.decode("utf-8")
