"""Real witness processes (``modelyard audit witness serve``) and SoftHSM2 tokens for tests."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from modelyard.audit.canonical import GENESIS_HASH, HASHED_FIELDS, record_hash
from modelyard.config import Settings
from modelyard.store.database import Database

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
SOFTHSM_PINS = ("--so-pin", "1234", "--pin", "4711")
START_DEADLINE_S = 120.0
"""Generous: how long a witness may take to import modelyard and bind its socket."""


def _env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("MODELYARD_DATABASE_URL", "MODELYARD_AUDIT_WITNESS", "MODELYARD_AUDIT_PUBKEY"):
        env.pop(name, None)
    return {**env, "MODELYARD_HOME": str(home), **(extra or {})}


def modelyard(
    home: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env=_env(home, env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@dataclass
class SoftToken:
    conf: Path
    label: str
    pin_file: Path

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}


def make_token(root: Path, label: str = "modelyard-witness") -> SoftToken:
    """A fresh SoftHSM2 token in ``root`` (its own conf, via SOFTHSM2_CONF). ``root`` must be
    reachable by the witness's user: SoftHSM2 re-reads the token's files while signing."""
    tokens = root / "tokens"
    tokens.mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    pin_file = root / "pin"
    pin_file.write_text("4711\n")
    pin_file.chmod(0o600)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, *SOFTHSM_PINS],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return SoftToken(conf, label, pin_file)


def give_token(token: SoftToken, user: str) -> None:
    """Hand the token's files to the witness's user (as an HSM's would be set up)."""
    account = pwd.getpwnam(user)
    tokens = token.conf.parent / "tokens"
    for path in [tokens, *tokens.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)


@dataclass
class WitnessProcess:
    """A witness's directory and the real ``serve`` process for it."""

    root: Path
    token: SoftToken | None = None
    proc: subprocess.Popen[bytes] | None = None
    public_pem: str = ""
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "serve.log"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def socket(self) -> Path:
        return self.root / "witness.sock"

    @property
    def pubkey(self) -> Path:
        return self.root / "pinned.pub"

    @property
    def journal(self) -> Path:
        return self.state_dir / "journal.jsonl"

    @property
    def _home(self) -> Path:
        return self.root / "cli-home"

    @property
    def _env(self) -> dict[str, str]:
        return self.token.env if self.token else {}

    def init(self) -> None:
        args = ["audit", "witness", "init", "--dir", str(self.state_dir)]
        if self.token is not None:
            args += ["--pkcs11-module", str(SOFTHSM_MODULE), "--token-label", self.token.label]
            args += ["--pin-file", str(self.token.pin_file)]
        done = modelyard(self._home, *args, env=self._env)
        if self.token is not None and os.geteuid() == 0:
            give_token(self.token, "nobody")  # the user the witness drops to below
        self.public_pem = done.stdout
        self.pubkey.write_text(done.stdout)

    def start(self) -> None:
        ready = self.root / "ready"
        ready.unlink(missing_ok=True)
        args = ["audit", "witness", "serve", "--dir", str(self.state_dir)]
        args += ["--socket", str(self.socket), "--ready-file", str(ready)]
        if os.geteuid() == 0:
            args += ["--user", "nobody"]  # started as root: it must drop to another user
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelyard", *args],
                env=_env(self._home, self._env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_DEADLINE_S
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the witness exited: {self.log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the witness did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def journal_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.journal.read_text().splitlines()]


def witnessed(settings: Settings, witness: WitnessProcess, *, pinned: bool = True) -> Settings:
    settings.audit_witness = witness.socket
    settings.audit_pubkey = witness.pubkey if pinned else None
    return settings


def execute(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def rehash(db: Database) -> str:
    """Recompute every record's hash and link, and the head: what an attacker with write
    access to the database does after editing records. Returns the new head hash."""
    with db.engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_records ORDER BY seq")).mappings().all()
        prev = rows[0]["prev_hash"] if rows else GENESIS_HASH
        for row in rows:
            fields = {k: row[k] for k in HASHED_FIELDS}
            if isinstance(fields["details"], str):
                fields["details"] = json.loads(fields["details"])
            digest = record_hash(fields, prev)
            conn.execute(
                sa.text("UPDATE audit_records SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": row["seq"]},
            )
            prev = digest
        conn.execute(sa.text("UPDATE audit_head SET hash = :h"), {"h": prev})
    return prev


def copy_sqlite(settings: Settings, target: Path) -> None:
    """A consistent file copy of the SQLite database (as a backup would take)."""
    source = sa.create_engine(settings.resolved_database_url)
    try:
        with source.connect() as conn:
            conn.exec_driver_sql(f"VACUUM INTO '{target}'")
    finally:
        source.dispose()


def restore_sqlite(settings: Settings, backup: Path) -> None:
    db_file = settings.home / "modelyard.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db_file}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, db_file)
