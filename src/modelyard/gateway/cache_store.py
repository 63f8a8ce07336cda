"""Where the response cache keeps its entries: Redis when configured, else in process.

A store maps a key (a SHA-256 hex digest, ``gateway/cache_key.py``) to an entry's bytes
with an expiry time. Both stores take "now" from the caller's clock, so expiry is exact
under an injected clock; Redis also expires keys by its own clock (the TTL travels as a
relative time), so nothing outlives its TTL there either. Entries written for a data
subject are listed under that subject's digest, so an erasure can drop them at once
(:func:`drop_subject_entries`).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from modelyard.config import Settings
from modelyard.errors import Unavailable


@dataclass(frozen=True)
class StoredEntry:
    payload: bytes
    expires_at: float
    subject: str | None = None
    """The digest of the data subject whose request wrote the entry (for erasure)."""


class CacheStore(Protocol):
    def get(self, key: str, now: float) -> StoredEntry | None: ...

    def put(self, key: str, entry: StoredEntry, now: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def drop_subject(self, subject: str) -> int:
        """Delete every entry written for ``subject`` (a digest); how many there were."""
        ...

    def close(self) -> None: ...


class MemoryCacheStore:
    """One process's entries: a bounded LRU, shared by the threads of the process."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, StoredEntry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> StoredEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: StoredEntry, now: float) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def drop_subject(self, subject: str) -> int:
        with self._lock:
            keys = [k for k, e in self._entries.items() if e.subject == subject]
            for key in keys:
                del self._entries[key]
            return len(keys)

    def close(self) -> None:
        with self._lock:
            self._entries.clear()


def _ttl_ms(entry: StoredEntry, now: float) -> int:
    return max(1, int((entry.expires_at - now) * 1000))


class RedisCacheStore:
    """Entries shared by every gateway process that uses the same Redis and prefix."""

    def __init__(self, url: str, *, prefix: str) -> None:
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=10, socket_timeout=5, socket_connect_timeout=5
        )
        self._client: Any = redis.Redis(connection_pool=pool)
        self._prefix = prefix

    def _entry_key(self, key: str) -> str:
        return f"{self._prefix}entry:{key}"

    def _subject_key(self, subject: str) -> str:
        return f"{self._prefix}subject:{subject}"

    def get(self, key: str, now: float) -> StoredEntry | None:
        try:
            raw = self._client.get(self._entry_key(key))
        except redis.RedisError as exc:
            raise Unavailable(f"the response cache (Redis) is unreachable: {exc}") from exc
        if raw is None:
            return None
        head, _, payload = bytes(raw).partition(b"\n")
        meta = json.loads(head)
        entry = StoredEntry(payload, float(meta["expires_at"]), meta.get("subject"))
        if entry.expires_at <= now:
            self.delete(key)
            return None
        return entry

    def put(self, key: str, entry: StoredEntry, now: float) -> None:
        head = json.dumps({"expires_at": entry.expires_at, "subject": entry.subject})
        ttl = _ttl_ms(entry, now)
        try:
            pipe = self._client.pipeline()
            pipe.set(self._entry_key(key), head.encode() + b"\n" + entry.payload, px=ttl)
            if entry.subject is not None:
                index = self._subject_key(entry.subject)
                pipe.sadd(index, key)
                pipe.pexpire(index, ttl, gt=True)
                pipe.pexpire(index, ttl, nx=True)
            pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"the response cache (Redis) is unreachable: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete(self._entry_key(key))
        except redis.RedisError as exc:
            raise Unavailable(f"the response cache (Redis) is unreachable: {exc}") from exc

    def drop_subject(self, subject: str) -> int:
        index = self._subject_key(subject)
        try:
            keys = [bytes(k).decode() for k in self._client.smembers(index)]
            entries = [self._entry_key(k) for k in keys]
            dropped = int(self._client.delete(*entries)) if entries else 0
            self._client.delete(index)
        except redis.RedisError as exc:
            raise Unavailable(f"the response cache (Redis) is unreachable: {exc}") from exc
        return dropped

    def close(self) -> None:
        self._client.close()


def open_cache_store(settings: Settings) -> CacheStore:
    """Redis when ``MODELYARD_REDIS_URL`` is set (shared by replicas), else in process."""
    if settings.redis_url:
        return RedisCacheStore(settings.redis_url, prefix=settings.cache_redis_prefix)
    return MemoryCacheStore(settings.cache_max_entries)


def drop_subject_entries(settings: Settings, subject_digest: str) -> int:
    """For an erasure in any process: drop the subject's entries from the shared (Redis)
    cache. In-process caches check the subject's audit key on every hit instead
    (``gateway/response_cache.py``), so they never replay an erased subject's entry."""
    if not settings.redis_url:
        return 0
    store = RedisCacheStore(settings.redis_url, prefix=settings.cache_redis_prefix)
    try:
        return store.drop_subject(subject_digest)
    finally:
        store.close()
