"""The response cache through a real ``modelyard serve`` and the official ``openai`` client,
on the default model; plus the stores' erasure path against the real Redis."""

from __future__ import annotations

import uuid

import openai

from modelyard.config import Settings
from modelyard.gateway.cache_store import RedisCacheStore, StoredEntry, drop_subject_entries
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.scopes import Scope
from modelyard.store.database import Database
from tests.gateway.conftest import Server

HEADER = "x-modelyard-cache"


def _cached_key(server: Server) -> str:
    settings = Settings(home=server.home)
    db = Database(settings.resolved_database_url)
    try:
        return create_scoped_key(
            db,
            settings,
            f"cache-{uuid.uuid4().hex[:8]}",
            admin=False,
            team=None,
            scope=Scope(cache=True),
            created_by="tests",
            actor="tests",
        ).plaintext
    finally:
        db.close()


def test_hits_through_a_real_server_with_the_openai_client(server: Server) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key=_cached_key(server), max_retries=0)
    ask = {
        "model": "gemma3-270m",
        "messages": [{"role": "user", "content": "Name a colour."}],
        "temperature": 0,
        "max_tokens": 8,
    }
    first = client.chat.completions.with_raw_response.create(**ask)
    assert first.headers[HEADER] == "miss"
    second = client.chat.completions.with_raw_response.create(**ask)
    assert second.headers[HEADER] == "hit"
    miss, hit = first.parse(), second.parse()
    assert hit.choices[0].message.content == miss.choices[0].message.content
    assert hit.usage == miss.usage
    with client.chat.completions.with_streaming_response.create(stream=True, **ask) as stream:
        assert stream.headers[HEADER] == "hit"
        chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == miss.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == miss.choices[0].finish_reason


def test_an_erasure_drops_the_subjects_redis_entries(sqlite_settings: Settings) -> None:
    prefix = f"modelyard-test:{uuid.uuid4().hex}:"
    settings = sqlite_settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:6379/0", "cache_redis_prefix": prefix}
    )
    store = RedisCacheStore("redis://127.0.0.1:6379/0", prefix=prefix)
    try:
        store.put("a", StoredEntry(b"{}", 160.0, "subject-1"), 100.0)
        store.put("b", StoredEntry(b"{}", 160.0, "subject-2"), 100.0)
        assert store.get("a", 100.0) is not None
        assert store.get("a", 160.0) is None  # expired by the caller's clock
        store.put("a", StoredEntry(b"{}", 160.0, "subject-1"), 100.0)
        assert drop_subject_entries(settings, "subject-1") == 1
        assert store.get("a", 100.0) is None
        assert store.get("b", 100.0) is not None
    finally:
        store.drop_subject("subject-2")
        store.close()
