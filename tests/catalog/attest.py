"""Builders shared by the signing and trial-load tests: real files registered as versions, key
pairs, policies."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelyard.catalog.records import ModelVersion, NewVersion, VersionFile
from modelyard.catalog.registry import Registry


def register_file(
    registry: Registry, path: Path, name: str, *, created_by: str = "alice"
) -> ModelVersion:
    """Register a real GGUF file as a version (straight into the blob store and catalog, as an
    import would, without intake's checks: a file that intake may refuse can be tested too)."""
    blob = registry.blobs.write_file(path)
    return registry.add_version(
        NewVersion(
            name=name,
            digest=blob.sha256,
            format="gguf",
            size_bytes=blob.size_bytes,
            metadata={"architecture": "gemma3", "context_length": 32768, "license": "gemma"},
            files=(VersionFile(path.name, blob.sha256, blob.size_bytes),),
            source_path=str(path),
            created_by=created_by,
        )
    )


def key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A fresh P-256 key pair as PEM files: (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def flip_byte(path: Path, offset: int) -> None:
    """Flip one byte of a stored blob in place (blobs are read-only: made writable first)."""
    path.chmod(0o644)
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
