"""The key check reuses the rows it read while ``access_generation`` stands still: a
revocation from another connection is refused on the very next request, expiry is judged per
request, a warm request reads the counters once (key check, ``serve_model`` and the
governance layer share them), and ``last_used_at`` is written at most once per interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, event, select

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.config import Settings
from modelyard.engines.base import Finish, SamplingParams, TextDelta
from modelyard.errors import Unauthorized
from modelyard.gateway.auth import check_key
from modelyard.gateway.generation import serve_model
from modelyard.gateway.pipeline import ChoiceEvent, GenerationCall
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import KeyStore
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies
from modelyard.store.database import Database
from modelyard.store.generation_tables import read_generations
from modelyard.store.keys_tables import ApiKeyRow
from tests.lifecycle.helpers import add_version


@pytest.fixture
def gateway(settings: Settings) -> Iterator[Gateway]:
    opened = Gateway.open(settings)
    yield opened
    asyncio.run(opened.close())


@pytest.fixture
def other(settings: Settings) -> Iterator[KeyStore]:
    """The same database through other connections: the CLI or another gateway process."""
    db = Database(settings.resolved_database_url)
    store = KeyStore(db, settings)
    yield store
    store.close()
    db.close()


def _statements(gateway: Gateway) -> list[str]:
    seen: list[str] = []
    event.listen(
        gateway.db.engine, "before_cursor_execute", lambda *args: seen.append(str(args[2]))
    )
    return seen


def test_a_revoked_key_is_refused_on_the_next_request(gateway: Gateway, other: KeyStore) -> None:
    _, plaintext = other.create("alice", created_by="ops", actor="ops")
    _, kept = other.create("bob", created_by="ops", actor="ops")
    assert check_key(gateway, plaintext).key_name == "alice"
    gateway.keys.usage.flush()  # the background last_used_at write
    statements = _statements(gateway)
    assert check_key(gateway, plaintext).key_name == "alice"
    assert len(statements) == 1 and "serving_generations" in statements[0]  # warm: counters
    other.revoke("alice", actor="ops")
    with pytest.raises(Unauthorized, match="revoked"):
        check_key(gateway, plaintext)
    assert check_key(gateway, kept).key_name == "bob"
    with other.db.session() as session:  # a row deleted behind the gateway's back
        session.execute(delete(ApiKeyRow).where(ApiKeyRow.name == "bob"))
    with pytest.raises(Unauthorized, match="invalid API key"):
        check_key(gateway, kept)


def test_a_wrong_secret_is_refused_from_the_cache(gateway: Gateway, other: KeyStore) -> None:
    _, plaintext = other.create("carol", created_by="ops", actor="ops")
    check_key(gateway, plaintext)
    forged = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    with pytest.raises(Unauthorized, match="invalid API key"):
        check_key(gateway, forged)
    unknown = f"my-{'0' * 12}-{'x' * 32}"
    with pytest.raises(Unauthorized, match="invalid API key"):
        check_key(gateway, unknown)
    assert len(gateway.keys.cache) == 1  # unknown ids are not kept


def _engine() -> object:
    async def inner(call: GenerationCall) -> AsyncIterator[ChoiceEvent]:
        yield ChoiceEvent(0, TextDelta("hi"))
        yield ChoiceEvent(0, Finish("stop", 3, 1))

    return inner


def _request(gateway: Gateway, plaintext: str) -> str:
    """What a chat request does before and around the engine: key, model, governance."""
    assert gateway.governance is not None
    governance = gateway.governance

    async def go() -> str:
        principal = await asyncio.to_thread(check_key, gateway, plaintext)
        served = await serve_model(gateway, "m", principal)
        call = GenerationCall(
            endpoint="chat",
            request_id="req",
            principal=principal,
            served=served,
            prompts=("hello",),
            params=SamplingParams(max_tokens=4),
            max_tokens=4,
            body={"model": "m"},
        )
        text = ""
        async for item in governance.generation_layer(call, _engine()):  # type: ignore[arg-type]
            if isinstance(item.event, TextDelta):
                text += item.event.text
        return text

    return asyncio.run(go())


def test_a_warm_request_reads_the_counters_once_and_no_key_or_policy_rows(
    gateway: Gateway, other: KeyStore
) -> None:
    add_version(gateway.registry, "m")
    place(gateway.registry, "m@1", Stage.PRODUCTION, actor="ops", reason="t")
    _, plaintext = other.create("dave", created_by="ops", actor="ops")
    KeyPolicies(other.db, other.settings).set("dave", None, Scope(), actor="ops")
    assert _request(gateway, plaintext) == "hi"
    gateway.keys.usage.flush()
    statements = _statements(gateway)
    assert _request(gateway, plaintext) == "hi"
    reads = [s for s in statements if "serving_generations" in s]
    assert len(reads) == 1
    assert not [s for s in statements if "api_keys" in s or "key_policies" in s]


def test_expiry_is_judged_per_request_from_the_cached_access(
    gateway: Gateway, other: KeyStore
) -> None:
    add_version(gateway.registry, "m")
    place(gateway.registry, "m@1", Stage.PRODUCTION, actor="ops", reason="t")
    _, plaintext = other.create("erin", created_by="ops", actor="ops")
    soon = datetime.now(UTC) + timedelta(seconds=0.4)
    KeyPolicies(other.db, other.settings).set("erin", None, Scope(expires_at=soon), actor="ops")
    assert _request(gateway, plaintext) == "hi"
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    statements = _statements(gateway)
    with pytest.raises(Unauthorized, match="expired"):
        _request(gateway, plaintext)
    assert not [s for s in statements if "key_policies" in s]  # from the cache, still refused


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _last_used(db: Database, name: str) -> datetime | None:
    with db.session() as session:
        value = session.scalar(select(ApiKeyRow.last_used_at).where(ApiKeyRow.name == name))
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def test_last_used_at_is_written_at_most_once_per_interval(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    clock = Clock()
    interval = settings.model_copy(update={"key_last_used_interval_s": 60})
    keys = KeyStore(db, interval, clock=clock, background_usage=True)
    other = KeyStore(db, interval, clock=clock)  # another process: its own memory, inline
    try:
        _, plaintext = keys.create("frank", created_by="ops", actor="ops")
        assert _last_used(db, "frank") is None
        start = clock.now
        counters = _counters(db)
        keys.authenticate(plaintext)
        keys.usage.flush()
        assert _last_used(db, "frank") == start
        clock.now = start + timedelta(seconds=59)
        keys.authenticate(plaintext)
        assert not keys.usage.used(keys.authenticate(plaintext).key_id)  # nothing queued
        other.authenticate(plaintext)  # its first use here, but written 59 s ago: skipped
        other.usage.flush()
        keys.usage.flush()
        assert _last_used(db, "frank") == start
        clock.now = start + timedelta(seconds=61)
        keys.authenticate(plaintext)
        keys.usage.flush()
        assert _last_used(db, "frank") == clock.now
        assert _counters(db) == counters  # usage does not invalidate the caches
    finally:
        keys.close()
        other.close()
        db.close()


def _counters(db: Database) -> object:
    with db.reads() as session:
        return read_generations(session)
