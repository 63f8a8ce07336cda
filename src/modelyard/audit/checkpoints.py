"""Signed checkpoints: ``(seq, head hash)`` signed with Ed25519, appended to a file under
``<home>/audit/checkpoints.jsonl`` — outside the database, so that truncating the log or
restoring an old copy of the database is detected by ``audit verify``.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from modelyard.audit.canonical import canonical_json, iso_now
from modelyard.audit.secrets import signing_key, verify_key
from modelyard.config import Settings


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    signature: str
    line: int

    def signed_bytes(self) -> bytes:
        return canonical_json({"seq": self.seq, "hash": self.hash, "at": self.at})


def _path(settings: Settings) -> os.PathLike[str]:
    return settings.audit_dir / "checkpoints.jsonl"


def write_checkpoint(settings: Settings, seq: int, head_hash: str) -> Checkpoint:
    key = signing_key(settings)
    at = iso_now()
    payload = canonical_json({"seq": seq, "hash": head_hash, "at": at})
    signature = base64.b64encode(key.sign(payload)).decode("ascii")
    line = json.dumps({"seq": seq, "hash": head_hash, "at": at, "sig": signature}) + "\n"
    fd = os.open(_path(settings), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("ascii"))  # one write: lines from several processes never mix
        os.fsync(fd)
    finally:
        os.close(fd)
    return Checkpoint(seq, head_hash, at, signature, line=-1)


def read_checkpoints(settings: Settings) -> list[Checkpoint]:
    path = settings.audit_dir / "checkpoints.jsonl"
    if not path.exists():
        return []
    found = []
    for number, raw in enumerate(path.read_text("ascii").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            found.append(
                Checkpoint(
                    int(item["seq"]), str(item["hash"]), str(item["at"]), item["sig"], number
                )
            )
        except (ValueError, KeyError, TypeError):
            found.append(Checkpoint(-1, "", "", "", number))
    return found


def signature_ok(settings: Settings, checkpoint: Checkpoint) -> bool:
    public = verify_key(settings)
    if public is None or checkpoint.seq < 0:
        return False
    try:
        public.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True
