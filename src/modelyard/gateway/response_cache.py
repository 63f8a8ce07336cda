"""The exact response cache: a layer inside governance, just around the engine call.

Off unless the calling key or its team opts in (``--cache``); governance fills the call's
:class:`~modelyard.gateway.pipeline.CacheNote` (tenant, TTL) after the key's checks and the
inbound PII screening, so the layer sees the prompts exactly as the engine would. Only
deterministic requests (temperature 0, or a seed) are looked up and stored; a request's
``X-Modelyard-Cache: no-cache`` skips the lookup (the fresh answer is stored),
``no-store`` skips both. A hit replays the engine's events (text, log-probabilities,
finish reasons, token counts) without calling the engine, so governance's output PII
filter, audit record and budget charge run on it as on any answer.

An entry remembers the data subject whose request wrote it (the audit subject key's id);
a hit first checks that key still exists, so an erased subject's entries are never
replayed, in any process (and Redis entries are also dropped by the erasure itself).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import Request
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from modelyard.audit.secrets import subject_digest
from modelyard.config import Settings
from modelyard.engines.base import Finish, TextDelta, TokenLogprob, TopLogprob
from modelyard.errors import InvalidInput, Unavailable
from modelyard.gateway.cache_key import cache_key, is_deterministic
from modelyard.gateway.cache_store import CacheStore, StoredEntry, open_cache_store
from modelyard.gateway.pipeline import CacheNote, ChoiceEvent, GenerationCall, Handler
from modelyard.store.audit_tables import AuditSubjectKeyRow
from modelyard.store.database import Database
from modelyard.store.generation_tables import read_generations

log = logging.getLogger(__name__)

CACHE_HEADER = "X-Modelyard-Cache"
"""Request: ``no-cache`` or ``no-store``; response: ``hit``, ``miss`` or ``bypass``."""
DIRECTIVES = ("no-cache", "no-store")


def cache_note(request: Request) -> CacheNote:
    """The call's note, with the request's directive (a 400 for an unknown one)."""
    value = request.headers.get(CACHE_HEADER)
    directive = value.strip().lower() if value is not None else None
    if directive is not None and directive not in DIRECTIVES:
        raise InvalidInput(
            f"{CACHE_HEADER} must be one of {', '.join(DIRECTIVES)} (got {value!r})",
            param=CACHE_HEADER,
        )
    return CacheNote(directive=directive)


def cache_headers(note: CacheNote | None) -> dict[str, str]:
    """The response header that says what the cache did (none when it is off)."""
    if note is None or note.status == "off":
        return {}
    return {CACHE_HEADER: note.status}


# -- entries ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encode_events(items: Sequence[ChoiceEvent]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        event = item.event
        if isinstance(event, Finish):
            tokens = [event.prompt_tokens, event.completion_tokens]
            out.append([item.index, "f", event.reason, *tokens])
            continue
        logprobs = [
            [
                lp.token,
                lp.logprob,
                _b64(lp.token_bytes),
                [[t.token, t.logprob, _b64(t.token_bytes)] for t in lp.top],
            ]
            for lp in event.logprobs
        ]
        out.append([item.index, "t", event.text, logprobs])
    return out


def decode_events(data: list[Any]) -> list[ChoiceEvent]:
    items = []
    for row in data:
        index, kind = int(row[0]), row[1]
        if kind == "f":
            items.append(ChoiceEvent(index, Finish(row[2], int(row[3]), int(row[4]))))
            continue
        logprobs = tuple(
            TokenLogprob(
                token,
                float(logprob),
                base64.b64decode(raw),
                tuple(TopLogprob(t, float(p), base64.b64decode(b)) for t, p, b in top),
            )
            for token, logprob, raw, top in row[3]
        )
        items.append(ChoiceEvent(index, TextDelta(row[2], logprobs)))
    return items


def _complete(items: Sequence[ChoiceEvent], choices: int) -> bool:
    """Every choice finished (an answer cut short is never stored)."""
    finished = {i.index for i in items if isinstance(i.event, Finish)}
    return finished == set(range(choices))


class ResponseCache:
    """The cache layer and its store (one per gateway process; the store may be shared)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        audit_engine: Engine,
        *,
        store: CacheStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.audit_engine = audit_engine
        self.store = store or open_cache_store(settings)
        self.clock = clock

    def close(self) -> None:
        self.store.close()

    async def layer(self, call: GenerationCall, inner: Handler) -> AsyncIterator[ChoiceEvent]:
        note = call.cache
        if note is None or note.ttl_s is None or note.tenant is None:
            async for item in inner(call):
                yield item
            return
        deterministic = is_deterministic(call.params)
        lookup = deterministic and note.directive is None
        keep = deterministic and note.directive != "no-store"
        key = await asyncio.to_thread(self._key, call, note.tenant) if keep else None
        if lookup and key is not None:
            replay = await asyncio.to_thread(self._lookup, key)
            if replay is not None:
                note.status = "hit"
                for item in replay:
                    yield item
                return
        note.status = "miss" if lookup and key is not None else "bypass"
        recorded: list[ChoiceEvent] = []
        async for item in inner(call):
            if key is not None:
                recorded.append(item)
            yield item
        if key is not None and _complete(recorded, len(call.prompts) * call.n):
            await asyncio.to_thread(self._store, key, call, note.ttl_s, recorded)

    # -- steps, each run off the event loop ------------------------------------------------

    def _key(self, call: GenerationCall, tenant: str) -> str | None:
        """The call's key under the catalog generation its key check read (else read now);
        None when the counters are missing (nothing may be reused then)."""
        generations = call.principal.generations
        if generations is None or generations.catalog is None:
            with self.db.reads() as session:
                generations = read_generations(session)
        if generations.catalog is None:
            return None
        return cache_key(call, tenant, generations.catalog)

    def _subject_id(self, digest: str) -> str | None:
        with Session(self.audit_engine) as session:
            found = session.execute(
                select(AuditSubjectKeyRow.id).where(AuditSubjectKeyRow.subject_digest == digest)
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def _lookup(self, key: str) -> list[ChoiceEvent] | None:
        try:
            entry = self.store.get(key, self.clock())
            if entry is None:
                return None
            data = json.loads(entry.payload)
            if entry.subject is not None and self._subject_id(entry.subject) != data["subject"]:
                self.store.delete(key)  # the subject was erased since: never replayed
                return None
        except Unavailable as exc:
            log.warning("response cache lookup failed (answering without it): %s", exc.message)
            return None
        return decode_events(data["events"])

    def _store(
        self, key: str, call: GenerationCall, ttl_s: int, items: Sequence[ChoiceEvent]
    ) -> None:
        digest = subject_digest(self.settings, call.user or call.principal.key_name)
        payload = json.dumps(
            {"subject": self._subject_id(digest), "events": encode_events(items)},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        if len(payload) > self.settings.cache_max_entry_bytes:
            return
        now = self.clock()
        try:
            self.store.put(key, StoredEntry(payload, now + ttl_s, digest), now)
        except Unavailable as exc:
            log.warning("response cache store failed (answer not kept): %s", exc.message)
