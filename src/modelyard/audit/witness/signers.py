"""The witness's signing key, behind one small protocol, with two backends.

* :class:`FileSigner` — an Ed25519 private key in a PEM file (mode 0600) in the witness's
  own state directory, owned by the witness's OS user;
* :class:`Pkcs11Signer` — an Ed25519 key generated on a PKCS#11 token (``CKM_EDDSA``;
  SoftHSM2 ≥ 2.6 in tests, an HSM in production) through ``python-pkcs11``: the private key
  never leaves the token.

Which backend a witness uses is written by ``modelyard audit witness init`` to
``<state>/witness.json``; :func:`open_signer` reads it back.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelyard.atomic_write import create_new
from modelyard.errors import Conflict, InvalidInput, StoreFault

CONFIG_NAME = "witness.json"
KEY_NAME = "signing.key"
PUBLIC_NAME = "public.pem"
ED25519_OID = "1.3.101.112"


class Signer(Protocol):
    def public_key(self) -> Ed25519PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...

    def close(self) -> None: ...


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` atomically (temp + fsync + link); Conflict if it already exists."""
    if not create_new(path, data, mode=mode):
        raise Conflict(f"{path} already exists")


class FileSigner:
    def __init__(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreFault(f"cannot read the witness key {path}: {exc.strerror}") from exc
        loaded = serialization.load_pem_private_key(data, password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise StoreFault(f"{path} is not an Ed25519 private key")
        self._key = loaded

    @staticmethod
    def create(path: Path) -> None:
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_new(path, pem)

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class Pkcs11Config:
    module: str
    token_label: str
    key_label: str
    pin_file: str

    def pin(self) -> str:
        try:
            return Path(self.pin_file).read_text("utf-8").strip()
        except OSError as exc:
            raise StoreFault(f"cannot read the token PIN file {self.pin_file}") from exc


class Pkcs11Signer:
    """One logged-in session on the token, opened at start (before privileges are dropped)."""

    def __init__(self, config: Pkcs11Config) -> None:
        import pkcs11
        from pkcs11 import Attribute, ObjectClass

        try:
            token = pkcs11.lib(config.module).get_token(token_label=config.token_label)
            self._session = token.open(user_pin=config.pin())
            self._private: Any = self._session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, label=config.key_label
            )
            public = self._session.get_key(
                object_class=ObjectClass.PUBLIC_KEY, label=config.key_label
            )
            point = bytes(public[Attribute.EC_POINT])
        except pkcs11.PKCS11Error as exc:
            raise StoreFault(
                f"PKCS#11 token {config.token_label!r} key {config.key_label!r}: "
                f"{type(exc).__name__}"
            ) from exc
        self._public = Ed25519PublicKey.from_public_bytes(_raw_point(point))

    @staticmethod
    def create(config: Pkcs11Config) -> None:
        import pkcs11
        from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
        from pkcs11.util.ec import encode_named_curve_parameters

        try:
            token = pkcs11.lib(config.module).get_token(token_label=config.token_label)
            with token.open(user_pin=config.pin(), rw=True) as session:
                existing = list(
                    session.get_objects(
                        {
                            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                            Attribute.LABEL: config.key_label,
                        }
                    )
                )
                if existing:
                    raise Conflict(
                        f"token {config.token_label!r} already holds a key {config.key_label!r}"
                    )
                params = session.create_domain_parameters(
                    KeyType.EC_EDWARDS,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)},
                    local=True,
                )
                params.generate_keypair(
                    store=True,
                    label=config.key_label,
                    mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                    private_template={Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True},
                )
        except pkcs11.PKCS11Error as exc:
            raise InvalidInput(
                f"cannot create an Ed25519 key on PKCS#11 token {config.token_label!r}: "
                f"{type(exc).__name__}"
            ) from exc

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        import pkcs11
        from pkcs11 import Mechanism

        try:
            return bytes(self._private.sign(data, mechanism=Mechanism.EDDSA))
        except pkcs11.PKCS11Error as exc:
            raise StoreFault(f"the PKCS#11 token cannot sign: {type(exc).__name__}") from exc

    def close(self) -> None:
        self._session.close()


def _raw_point(point: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING (04 20 <32 bytes>) on most tokens, raw on some."""
    if len(point) == 34 and point[:2] == b"\x04\x20":
        return point[2:]
    if len(point) == 32:
        return point
    raise StoreFault("the token's public key is not an Ed25519 point")


def read_config(state_dir: Path) -> dict[str, Any]:
    path = state_dir / CONFIG_NAME
    try:
        config = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"{state_dir} is not a witness directory: run `modelyard audit witness init` first"
        ) from exc
    except (OSError, ValueError) as exc:
        raise StoreFault(f"cannot read {path}: {exc}") from exc
    if not isinstance(config, dict) or config.get("backend") not in ("file", "pkcs11"):
        raise StoreFault(f"{path} names no known signing backend")
    return config


def open_signer(state_dir: Path) -> Signer:
    config = read_config(state_dir)
    if config["backend"] == "file":
        return FileSigner(state_dir / KEY_NAME)
    return Pkcs11Signer(
        Pkcs11Config(
            module=str(config["module"]),
            token_label=str(config["token_label"]),
            key_label=str(config["key_label"]),
            pin_file=str(config["pin_file"]),
        )
    )


def init_witness(
    state_dir: Path, *, pkcs11: Pkcs11Config | None = None, purge_min_age_days: float = 1.0
) -> Ed25519PublicKey:
    """Create a witness's state directory and key; the public key, to pin elsewhere."""
    if purge_min_age_days < 1:
        raise InvalidInput("the witness's minimum purge age must be at least 1 day")
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    if (state_dir / CONFIG_NAME).exists():
        raise Conflict(f"{state_dir} already holds a witness")
    config: dict[str, Any] = {"purge_min_age_days": purge_min_age_days}
    if pkcs11 is None:
        FileSigner.create(state_dir / KEY_NAME)
        config["backend"] = "file"
    else:
        Pkcs11Signer.create(pkcs11)
        config |= {"backend": "pkcs11", **asdict(pkcs11)}
    write_new(state_dir / CONFIG_NAME, json.dumps(config, indent=2).encode("utf-8"))
    signer = open_signer(state_dir)
    try:
        public = signer.public_key()
    finally:
        signer.close()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_new(state_dir / PUBLIC_NAME, pem, 0o644)
    return public
