"""Password hashing (argon2id) and time-based one-time passwords (RFC 6238, 30 s steps)."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from modelyard.errors import InvalidInput

MIN_PASSWORD_CHARS = 12
TOTP_STEP_S = 30


def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile


def check_password_strength(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(
            f"a password needs at least {MIN_PASSWORD_CHARS} characters", param="password"
        )
    if len(password) > 1024:
        raise InvalidInput("a password may have at most 1024 characters", param="password")
    return password


def hash_password(password: str) -> str:
    return _hasher().hash(check_password_strength(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a missing hash costs a hash too (no timing oracle)."""
    hasher = _hasher()
    if stored_hash is None:
        hasher.hash("not-a-password-timing-equaliser")
        return False
    try:
        return hasher.verify(stored_hash, password[:1024])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, name: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="modelyard")


def totp_now(secret: str, now: datetime) -> str:
    """The code for ``now`` (for tests and enrolment checks)."""
    return pyotp.TOTP(secret).at(now)


def totp_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` is valid for (this step or the one before), or None.

    A step at or before ``last_step`` is refused: a code works once."""
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // TOTP_STEP_S
    for step in (current, current - 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * TOTP_STEP_S), code):
            return step
    return None
