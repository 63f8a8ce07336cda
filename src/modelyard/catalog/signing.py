"""Model signatures: OpenSSF model-signing in key mode, offline.

``modelyard models sign REF --key PRIVATE.pem`` signs the version's files (laid out as a
folder, hard links into the blob store) with an elliptic-curve private key; the Sigstore
bundle that model-signing writes is kept twice: in the blob store under its own sha256, and
in the catalog (``version_signatures``) with the fingerprint of the key. Signing and
verifying are recorded in the audit log.

What a signature binds: model-signing's manifest lists every file of the version by its path
and SHA-256. A signature counts for a version only when that manifest is exactly the
version's files with the digests the catalog holds, so a bundle made for other bytes (or a
tampered blob signed by mistake) never passes. Sigstore keyless signing (and so the network)
is never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from modelyard.catalog.audit_events import append_event, audited
from modelyard.catalog.lifecycle import aware
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.rows import find_version, ref_of
from modelyard.engines.materialise import MATERIALISED_MARKER, materialise
from modelyard.errors import Fault, InvalidInput
from modelyard.store.attestation_tables import SignatureRow

if TYPE_CHECKING:
    from modelyard.catalog.registry import Registry
    from modelyard.config import Settings
    from modelyard.store.database import Database


@dataclass(frozen=True)
class Signature:
    ref: str
    model_digest: str
    bundle_sha256: str
    key_sha256: str
    signed_by: str
    created_at: datetime
    bundle: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "model_digest": self.model_digest,
            "bundle_sha256": self.bundle_sha256,
            "key_sha256": self.key_sha256,
            "signed_by": self.signed_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Verification:
    ref: str
    ok: bool
    detail: str
    key_sha256: str
    signature: Signature | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "ok": self.ok,
            "detail": self.detail,
            "key_sha256": self.key_sha256,
            "signature": self.signature.to_json() if self.signature else None,
        }


def _record(row: SignatureRow, ref: str) -> Signature:
    return Signature(
        ref,
        row.model_digest,
        row.bundle_sha256,
        row.key_sha256,
        row.signed_by,
        aware(row.created_at),
        row.bundle,
    )


def read_public_key(path: Path) -> bytes:
    """A PEM public key (EC, the curves model-signing accepts), normalised to SPKI PEM."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise InvalidInput(
            f"cannot read public key {path}: {exc.strerror}", param="pubkey"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{path} is not a PEM public key", param="pubkey") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidInput(f"{path} is not an elliptic-curve public key", param="pubkey")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_of_private(path: Path) -> bytes:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise InvalidInput(f"cannot read private key {path}: {exc.strerror}", param="key") from exc
    except TypeError as exc:
        raise InvalidInput(
            f"{path} is encrypted; give an unencrypted EC private key", param="key"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{path} is not a PEM private key", param="key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"{path} is not an elliptic-curve private key", param="key")
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _require_model_signing() -> None:
    """Import model-signing (lazily: only signing needs it), or say what is missing."""
    try:
        import model_signing  # noqa: F401
    except ImportError as exc:
        raise Fault(
            f"model-signing cannot be imported ({exc}); reinstall modelyard's dependencies"
        ) from exc


def key_fingerprint(public_pem: bytes) -> str:
    """SHA-256 of the SPKI PEM: the key hint model-signing writes into its bundles."""
    return hashlib.sha256(public_pem).hexdigest()


def signed_files(bundle: str, public_pem: bytes) -> dict[str, str]:
    """Check the bundle's signature with this key; the files it signs (path → sha256).

    Raises ``ValueError`` when the bundle is malformed, made with another key, or its
    signature does not verify.
    """
    _require_model_signing()
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    with tempfile.TemporaryDirectory(prefix="modelyard-verify-") as scratch:
        key_path, bundle_path = Path(scratch) / "key.pem", Path(scratch) / "bundle.json"
        key_path.write_bytes(public_pem)
        bundle_path.write_text(bundle, encoding="utf-8")
        try:
            signature = sign_sigstore_pb.Signature.read(bundle_path)
            manifest = sign_ec_key.Verifier(key_path).verify(signature)
        except InvalidSignature as exc:
            raise ValueError("the signature does not verify with this key") from exc
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the signature bundle is malformed ({exc})") from exc
    files: dict[str, str] = {}
    for descriptor in manifest.resource_descriptors():
        if descriptor.digest.algorithm != "sha256":
            raise ValueError(f"the bundle hashes with {descriptor.digest.algorithm}, not sha256")
        files[str(descriptor.identifier)] = descriptor.digest.digest_hex
    return files


def expected_files(version: ModelVersion) -> dict[str, str]:
    return {entry.path: entry.sha256 for entry in version.files}


def check_bundle(
    version: ModelVersion,
    bundle: str,
    public_pem: bytes,
    *,
    actual: dict[str, str] | None = None,
) -> None:
    """Raise ``ValueError`` unless ``bundle`` is a valid signature by this key over exactly
    the version's files with the catalog's digests (and ``actual``'s, the digests of bytes
    just read, when given)."""
    signed = signed_files(bundle, public_pem)
    wanted = expected_files(version)
    if signed != wanted:
        raise ValueError(
            f"the signature covers other files or bytes than {version.ref} "
            f"(signed: {_describe(signed)}; catalog: {_describe(wanted)})"
        )
    for path, digest in (actual or {}).items():
        if signed.get(path) != digest:
            raise ValueError(f"{path}: the bytes read do not match the signed sha256")


def _describe(files: dict[str, str]) -> str:
    return ", ".join(f"{path} sha256:{digest[:12]}" for path, digest in sorted(files.items()))


def stored_signatures(db: Database, ref: str) -> list[Signature]:
    """The version's signatures, newest first."""
    with db.session() as session:
        row = find_version(session, ref)
        rows = session.scalars(
            select(SignatureRow)
            .where(SignatureRow.version_id == row.id)
            .order_by(SignatureRow.id.desc())
        )
        return [_record(r, ref_of(row)) for r in rows]


def find_valid(
    db: Database,
    version: ModelVersion,
    keys: Iterable[bytes],
    *,
    actual: dict[str, str] | None = None,
) -> tuple[Signature | None, str]:
    """The newest stored signature that one of ``keys`` verifies over this version (and
    over ``actual``'s digests, of bytes just read), or None and why not."""
    signatures = stored_signatures(db, version.ref)
    if not signatures:
        return None, f"{version.ref} has no signature"
    pems = list(keys)
    why = "no trusted key is configured"
    fingerprints = {key_fingerprint(pem): pem for pem in pems}
    for signature in signatures:
        pem = fingerprints.get(signature.key_sha256)
        if pem is None:
            why = f"not signed by a trusted key (signed by key {signature.key_sha256[:12]})"
            continue
        try:
            check_bundle(version, signature.bundle, pem, actual=actual)
        except ValueError as exc:
            why = str(exc)
            continue
        return signature, "ok"
    return None, why


class Signatures:
    """Sign versions, keep their bundles, verify them; audited."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings

    def _folder(self, version: ModelVersion, scratch: str) -> Path:
        """The version's files as a folder of hard links to the blobs as they are now (made
        afresh: a folder kept from before could link to bytes since replaced in the store)."""
        return materialise(version, self.registry.blobs, Path(scratch))

    @audited("model.sign")
    def sign(self, ref: str, private_key: Path, *, actor: str) -> Signature:
        _require_model_signing()
        from model_signing import hashing, signing

        public_pem = _public_of_private(private_key)
        version = self.registry.get(ref)
        self.settings.ensure_home()
        with tempfile.TemporaryDirectory(prefix=".sign-", dir=self.settings.home) as scratch:
            folder = self._folder(version, scratch)
            out = Path(scratch) / "bundle.json"
            try:
                config = signing.Config()  # type: ignore[no-untyped-call]
                files = hashing.Config()  # type: ignore[no-untyped-call]
                config.set_hashing_config(files.set_ignored_paths(paths=[MATERIALISED_MARKER]))
                config.use_elliptic_key_signer(private_key=private_key).sign(folder, out)
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"cannot sign with {private_key}: {exc}", param="key") from exc
            bundle = out.read_text(encoding="utf-8")
        try:
            check_bundle(version, bundle, public_pem)
        except ValueError as exc:
            # model-signing hashed the stored files: they are not what the catalog says.
            raise Fault(
                f"refusing to record a signature of {version.ref}: {exc} — run "
                "`modelyard store verify`"
            ) from exc
        blob = self.registry.blobs.write_stream([io.BytesIO(bundle.encode("utf-8"))])
        with self.registry.db.session() as session:
            row = find_version(session, version.ref)
            record = SignatureRow(
                version_id=row.id,
                model_digest=version.digest,
                bundle_sha256=blob.sha256,
                bundle=bundle,
                key_sha256=key_fingerprint(public_pem),
                signed_by=actor,
            )
            session.add(record)
            session.flush()
            signature = _record(record, ref_of(row))
            append_event(
                session,
                self.registry.db,
                self.settings,
                "model.sign",
                actor,
                signature.ref,
                signature.to_json(),
            )
        return signature

    def list(self, ref: str) -> list[Signature]:
        """The version's signatures, newest first."""
        return stored_signatures(self.registry.db, ref)

    @audited("model.verify")
    def verify(self, ref: str, public_key: Path, *, actor: str) -> Verification:
        """Verify the stored signature(s) with ``public_key`` against the stored files, read
        again now (model-signing re-hashes them); recorded in the audit log."""
        _require_model_signing()
        from model_signing import verifying

        public_pem = read_public_key(public_key)
        fingerprint = key_fingerprint(public_pem)
        version = self.registry.get(ref)
        signature, detail = find_valid(self.registry.db, version, [public_pem])
        if signature is not None:
            self.settings.ensure_home()
            with tempfile.TemporaryDirectory(prefix=".verify-", dir=self.settings.home) as scratch:
                folder = self._folder(version, scratch)
                bundle_path = Path(scratch) / "bundle.json"
                bundle_path.write_text(signature.bundle, encoding="utf-8")
                try:
                    checker = verifying.Config()  # type: ignore[no-untyped-call]
                    checker.use_elliptic_key_verifier(public_key=public_key).verify(
                        folder, bundle_path
                    )
                    detail = f"signed by key {fingerprint[:12]}; stored files match the signature"
                except (ValueError, InvalidSignature) as exc:
                    detail = f"the stored files do not match the signature: {exc}"
                    signature = None
        result = Verification(version.ref, signature is not None, detail, fingerprint, signature)
        from modelyard.audit.log import record_event  # the audit log sits above the catalog

        record_event(
            self.registry.db, self.settings, "model.verify", actor, version.ref, result.to_json()
        )
        return result
