"""What a witness signs, and how anyone holding its public key checks it.

Two kinds of statement, each one JSON line in the witness's journal:

* a **head** — ``{"seq", "hash", "at", "sig"}``: "the audit chain's record ``seq`` has hash
  ``hash``". The signed bytes are ``canonical_json({"seq", "hash", "at"})`` (the format the
  in-home checkpoints always had, so old ``checkpoints.jsonl`` lines stay verifiable);
* a **purge** — ``{"kind": "purge", "through_seq", "through_hash", "at", "sig"}``: "records
  ``1..through_seq``, whose last has hash ``through_hash``, may be removed". Signed bytes:
  ``canonical_json({"kind": "purge", "through_seq", "through_hash", "at"})``; the different
  key set keeps a purge signature from ever passing as a head signature.

Signatures are Ed25519 (a key file, or a PKCS#11 token's ``CKM_EDDSA``), base64 in the line.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from modelyard.audit.canonical import canonical_json
from modelyard.errors import InvalidInput


@dataclass(frozen=True)
class HeadStatement:
    seq: int
    hash: str
    at: str
    sig: str

    def signed_bytes(self) -> bytes:
        return head_bytes(self.seq, self.hash, self.at)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "at": self.at, "sig": self.sig}


@dataclass(frozen=True)
class PurgeStatement:
    through_seq: int
    through_hash: str
    at: str
    sig: str

    def signed_bytes(self) -> bytes:
        return purge_bytes(self.through_seq, self.through_hash, self.at)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "purge",
            "through_seq": self.through_seq,
            "through_hash": self.through_hash,
            "at": self.at,
            "sig": self.sig,
        }


Statement = HeadStatement | PurgeStatement


def head_bytes(seq: int, head_hash: str, at: str) -> bytes:
    return canonical_json({"seq": seq, "hash": head_hash, "at": at})


def purge_bytes(through_seq: int, through_hash: str, at: str) -> bytes:
    return canonical_json(
        {"kind": "purge", "through_seq": through_seq, "through_hash": through_hash, "at": at}
    )


def parse_statement(item: Any) -> Statement:
    """A journal line's object as a statement; ValueError when it is not one."""
    if not isinstance(item, dict):
        raise ValueError("not an object")
    try:
        if item.get("kind") == "purge":
            return PurgeStatement(
                int(item["through_seq"]), str(item["through_hash"]), str(item["at"]), item["sig"]
            )
        if "kind" in item:
            raise ValueError(f"unknown statement kind {item['kind']!r}")
        return HeadStatement(int(item["seq"]), str(item["hash"]), str(item["at"]), item["sig"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed statement: {exc}") from exc


def statement_line(statement: Statement) -> bytes:
    return (json.dumps(statement.to_json(), sort_keys=True) + "\n").encode("ascii")


def signature_valid(public: Ed25519PublicKey, signature: Any, data: bytes) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        public.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_pem(data: bytes, source: str) -> Ed25519PublicKey:
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InvalidInput(f"{source} is not a PEM public key") from exc
    if not isinstance(loaded, Ed25519PublicKey):
        raise InvalidInput(f"{source} is not an Ed25519 public key")
    return loaded


def load_public_file(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the pinned audit public key {path}: {exc.strerror}"
        ) from exc
    return load_public_pem(data, str(path))


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=")
