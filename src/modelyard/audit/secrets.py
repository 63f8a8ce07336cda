"""Key material kept outside the database, under ``<home>/audit`` with mode 0600.

* ``signing.key``: the Ed25519 private key that signs checkpoints (PEM, PKCS#8) when no
  witness is configured (``MODELYARD_AUDIT_WITNESS``) — no evidence against whoever can
  write the home; a witness keeps its key elsewhere (:mod:`modelyard.audit.witness`).
* ``signing.pub``: its public key.
* ``subject.secret``: 32 random bytes; HMAC key that turns a data subject's identifier
  into the digest the subject-keys table is indexed by.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelyard.atomic_write import create_new
from modelyard.config import Settings
from modelyard.errors import StoreFault


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 atomically; never overwrite (another process's stays)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    create_new(path, data, mode=0o600)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StoreFault(f"cannot read audit key material {path}: {exc.strerror}") from exc


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    path = settings.audit_dir / "signing.key"
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(path, pem)
    loaded = serialization.load_pem_private_key(_read(path), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise StoreFault(f"{path} is not an Ed25519 private key")
    pub_path = settings.audit_dir / "signing.pub"
    if not pub_path.exists():  # also after a crash between writing the two files
        public = loaded.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write_private(pub_path, public)
    return loaded


def verify_key(settings: Settings) -> Ed25519PublicKey | None:
    """The public key, or None when no checkpoint key was ever created."""
    path = settings.audit_dir / "signing.pub"
    if not path.exists():
        return None
    loaded = serialization.load_pem_public_key(_read(path))
    if not isinstance(loaded, Ed25519PublicKey):
        raise StoreFault(f"{path} is not an Ed25519 public key")
    return loaded


def subject_digest(settings: Settings, subject: str) -> str:
    path = settings.audit_dir / "subject.secret"
    if not path.exists():
        _write_private(path, secrets.token_bytes(32))
    return hmac.new(_read(path), subject.encode("utf-8"), hashlib.sha256).hexdigest()
