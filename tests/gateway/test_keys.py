"""API keys: random, shown once, stored as a hash, checked in constant time; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, NotFound, Unauthorized
from modelyard.governance.keys import KeyStore, hash_key
from modelyard.store.database import Database
from modelyard.store.keys_tables import ApiKeyRow


@pytest.fixture
def keys(settings: Settings) -> Iterator[KeyStore]:
    db = Database(settings.resolved_database_url)
    yield KeyStore(db, settings)
    db.close()


def test_create_authenticate_revoke(keys: KeyStore) -> None:
    record, plaintext = keys.create("alice", admin=True, created_by="tests", actor="tests")
    assert plaintext.startswith(f"my-{record.id}-")
    secret = plaintext.removeprefix(f"my-{record.id}-")
    assert len(secret) >= 22  # base64url: >= 128 bits
    principal = keys.authenticate(plaintext)
    assert principal.key_name == "alice" and principal.admin
    keys.revoke("alice", actor="tests")
    with pytest.raises(Unauthorized, match="revoked"):
        keys.authenticate(plaintext)
    assert keys.count_active() == 0


def test_only_the_hash_is_stored(keys: KeyStore) -> None:
    record, plaintext = keys.create("bob", created_by="tests", actor="tests")
    secret = plaintext.removeprefix(f"my-{record.id}-")
    with keys.db.session() as session:
        row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == "bob"))
        assert row is not None
        stored = [str(getattr(row, c.key)) for c in ApiKeyRow.__table__.columns]
    assert hash_key(plaintext) in stored
    assert not any(plaintext in value or secret in value for value in stored)


@pytest.mark.parametrize(
    "presented",
    ["", "nope", "my-", "my-zz-zz", "sk-123", "my-000000000000-wrong"],
)
def test_wrong_keys_are_refused(keys: KeyStore, presented: str) -> None:
    keys.create("carol", created_by="tests", actor="tests")
    with pytest.raises(Unauthorized):
        keys.authenticate(presented)


def test_tampered_secret_is_refused(keys: KeyStore) -> None:
    _, plaintext = keys.create("dave", created_by="tests", actor="tests")
    with pytest.raises(Unauthorized):
        keys.authenticate(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"))


def test_names_are_unique_and_validated(keys: KeyStore) -> None:
    keys.create("erin", created_by="tests", actor="tests")
    with pytest.raises(Conflict):
        keys.create("erin", created_by="tests", actor="tests")
    with pytest.raises(InvalidInput):
        keys.create("Bad Name!", created_by="tests", actor="tests")
    with pytest.raises(NotFound):
        keys.revoke("nobody", actor="tests")


@pytest.mark.slow
def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("MODELYARD_DATABASE_URL", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modelyard", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    created = cli("create", "ops", "--admin", "--json")
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert data["admin"] is True and data["key"].startswith("my-")
    plain = cli("create", "app")
    assert plain.returncode == 0 and plain.stdout.strip().startswith("my-")
    assert "only time" in plain.stderr
    listed = json.loads(cli("list", "--json").stdout)
    assert [k["name"] for k in listed] == ["app", "ops"]
    assert all("key" not in k for k in listed)
    revoked = cli("revoke", "ops", "--json")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["active"] is False
    missing = cli("revoke", "ghost")
    assert missing.returncode == 1 and "no key named" in missing.stderr
