"""Governance around the engine call: scopes → PII → limits → engine → audit record.

One layer, because its parts share per-request state (the PII placeholders the answer must
restore, the reservation the real token count settles, the redacted texts the audit record
stores). Each part lives in its own module under :mod:`modelyard.governance` and
:mod:`modelyard.audit`; this file only orders them.

A request that reaches the model has two records. ``request.accepted`` (who, which model,
the prompt per text mode) is committed before the engine is called, so before the first
byte of any answer: if it cannot be written the call fails with 503 before any content,
streaming or not (fail closed). The ``request`` record (status, tokens, latency, the
answer; ``details.accepted_seq`` links the two) is committed at the end, whatever the
outcome — 4xx or 5xx from the engine, a fault, the client going away (499) — and ``Finish``
events are held back until it is, so a non-streaming answer is never released without it.
A request that never ends (the gateway killed mid-answer) leaves its accepted record
without a completion, which :func:`modelyard.audit.query.open_requests` lists.
Refusals (403, 429, 400 for blocked PII) and faults before the model are one ``request``
record each, without text.

The response cache (``gateway/response_cache.py``) is the next layer in: governance tells
it the tenant and TTL (the key's and team's setting), and its answer passes the output PII
filter, the completion record (``details.cache``: hit, miss or bypass) and the budget
charge (``cache_hit_token_rate`` of the tokens on a hit) like the engine's.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from modelyard.audit.log import AuditEntry, AuditLog
from modelyard.audit.query import ACCEPTED
from modelyard.config import Settings
from modelyard.engines.base import Prompt, PromptPart, TextDelta, prompt_text
from modelyard.engines.workers import model_context
from modelyard.errors import ModelyardError, Unavailable
from modelyard.gateway.pipeline import (
    ChoiceEvent,
    EmbeddingCall,
    EmbeddingHandler,
    EmbeddingResult,
    GenerationCall,
    Handler,
)
from modelyard.gateway.usage import TokenUsage, choice_usage
from modelyard.governance.keys import Principal
from modelyard.governance.limits import Limiter, Reservation, open_limiter
from modelyard.governance.pii.analyzer import Analyzer
from modelyard.governance.pii.policy import PiiBlocked, PiiGuard
from modelyard.governance.pii.stream import OutputFilter
from modelyard.governance.scopes import Access
from modelyard.governance.teams import KeyPolicies
from modelyard.store.database import Database

CLIENT_CLOSED = 499

log = logging.getLogger(__name__)


def estimate_tokens(text: str) -> int:
    """A deliberately high guess of a prompt's tokens (2 characters a token), for reserving."""
    return len(text) // 2 + 1


def screen_prompts(
    guard: PiiGuard, prompts: tuple[Prompt, ...]
) -> tuple[list[Prompt], list[Prompt]]:
    """``(what the model sees, what the log stores)``: PII policy over the text users wrote.

    A raw prompt is all user text; in a chat prompt only message content is (the template's
    own text is never redacted, so the turn structure survives).
    """
    texts: list[str] = []
    for prompt in prompts:
        if isinstance(prompt, str):
            texts.append(prompt)
        else:
            texts.extend(part.text for part in prompt if not part.special)
    model_texts, logged_texts = guard.inbound(texts)

    def rebuild(replacements: list[str]) -> list[Prompt]:
        it = iter(replacements)
        out: list[Prompt] = []
        for prompt in prompts:
            if isinstance(prompt, str):
                out.append(next(it))
            else:
                out.append(
                    tuple(part if part.special else PromptPart(next(it), False) for part in prompt)
                )
        return out

    return rebuild(model_texts), rebuild(logged_texts)


class Governance:
    """What one gateway process holds for governance: policies, limiter, analyzer, audit log."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        limiter: Limiter | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.policies = KeyPolicies(db, settings)
        self.limiter = limiter or open_limiter(settings)
        self.analyzer = Analyzer.from_settings(settings)
        self.audit = audit or AuditLog(db, settings)

    def close(self) -> None:
        try:
            self.audit.close(checkpoint=True)
        finally:
            self.limiter.close()

    # -- shared steps -------------------------------------------------------------------

    async def _admit(self, principal: Principal, route: str, model_names: list[str]) -> Access:
        """The key's access (as its check read it for this request, else read now), checked
        against the clock, the route and the model."""
        access = principal.access
        if access is None:
            access = await asyncio.to_thread(
                self.policies.access, principal.key_name, admin=principal.admin
            )
        access.check_alive()
        access.check_route(route)
        access.check_model(model_names)
        return access

    def _entry(
        self, call: GenerationCall | EmbeddingCall, route: str, access: Access | None
    ) -> AuditEntry:
        version = call.served.version
        details: dict[str, Any] = {
            "request_id": call.request_id,
            "served": call.served.route or None,
            "canary": call.served.canary,
        }
        if call.batch is not None:
            details["batch"] = call.batch.to_json()
        return AuditEntry(
            kind="request",
            actor=call.principal.key_name,
            team=access.team if access else None,
            route=route,
            target=version.ref,
            blob_sha256=version.digest,
            client=call.client,
            subject=call.user or call.principal.key_name,
            details=details,
        )

    def _reserve(self, access: Access, estimate: int) -> Reservation:
        """Take ``estimate`` tokens from the key's and its team's limits (may call Redis)."""
        return self.limiter.reserve(
            access.key_name,
            access.key_scope.limits,
            access.team,
            access.team_scope.limits,
            estimate,
        )

    async def _record(self, entry: AuditEntry) -> None:
        await asyncio.to_thread(self.audit.append, entry)

    async def _refused(self, entry: AuditEntry, exc: BaseException) -> None:
        """Record a request refused (or failed) before the model: one ``request`` record."""
        if isinstance(exc, ModelyardError):
            entry.status = exc.http_status
            entry.details["error"] = exc.code or type(exc).__name__
        else:
            entry.status, entry.details["error"] = 500, type(exc).__name__
        await self._record(entry)  # an Unavailable here replaces the refusal: fail closed

    async def _accept(self, entry: AuditEntry, prompt: str, reservation: Reservation) -> None:
        """Commit the ``request.accepted`` record before the model runs; link it from
        ``entry`` (the completion). Fails closed: no record, no call, the reservation back."""
        accepted = replace(entry, kind=ACCEPTED, prompt=prompt, details=dict(entry.details))
        try:
            appended = await asyncio.to_thread(self.audit.append, accepted)
        except BaseException:
            await asyncio.to_thread(self.limiter.settle, reservation, 0)
            raise
        entry.details["accepted_seq"] = appended.seq

    def _complete_now(self, entry: AuditEntry) -> None:
        """Write the completion record from a closing generator (it cannot await). If the
        log cannot be written, the exception in flight stays the answer; the accepted
        record without completion is what the log shows (``open_requests``)."""
        try:
            self.audit.append(entry)
        except Unavailable as exc:
            log.error(
                "request %s: completion record not written: %s",
                entry.details.get("request_id"),
                exc.message,
            )

    # -- chat and completions -------------------------------------------------------------

    async def generation_layer(
        self, call: GenerationCall, inner: Handler
    ) -> AsyncIterator[ChoiceEvent]:
        started = time.monotonic()
        names = [str(call.body.get("model") or call.served.version.name)]
        names += [call.served.version.name, call.served.version.ref]
        entry = self._entry(call, call.endpoint, None)
        entry.details.update(_params(call))
        try:
            access = await self._admit(call.principal, call.endpoint, names)
            entry.team = access.team
            guard = PiiGuard(access.pii_policy(self.settings.pii_default_policy), self.analyzer)
            entry.details["pii"] = guard.policy
            if call.cache is not None:  # the response cache: this key's or team's setting
                call.cache.tenant = access.tenant
                call.cache.ttl_s = access.cache_ttl_s(self.settings.cache_default_ttl_s)
            context = model_context(call.served.version, self.settings.worker_ctx_per_slot)
            per_prompt = call.max_tokens if call.max_tokens is not None else context

            def screen_and_reserve() -> tuple[list[Prompt], list[Prompt], Reservation]:
                # Off the event loop: PII scanning is CPU work, the limiter may call Redis.
                model_prompts, logged_prompts = screen_prompts(guard, call.prompts)
                estimate = sum(
                    estimate_tokens(prompt_text(p)) + per_prompt * call.n for p in model_prompts
                )
                return model_prompts, logged_prompts, self._reserve(access, estimate)

            model_prompts, logged_prompts, reservation = await asyncio.to_thread(screen_and_reserve)
        except Exception as exc:  # recorded, then raised
            if isinstance(exc, PiiBlocked):
                entry.details["pii_types"] = list(exc.types)
            await self._refused(entry, exc)
            raise
        entry.text_mode = guard.text_mode
        await self._accept(entry, "\n\n".join(prompt_text(p) for p in logged_prompts), reservation)
        async for item in self._generate(
            replace(call, prompts=tuple(model_prompts)), inner, guard, entry, reservation, started
        ):
            yield item

    async def _generate(
        self,
        call: GenerationCall,
        inner: Handler,
        guard: PiiGuard,
        entry: AuditEntry,
        reservation: Reservation,
        started: float,
    ) -> AsyncIterator[ChoiceEvent]:
        filters: dict[int, OutputFilter] = {}
        logged: dict[int, list[str]] = {}
        held: list[ChoiceEvent] = []
        passthrough = guard.policy == "off"
        usage = TokenUsage()
        try:
            async for item in inner(call):
                out = filters.setdefault(item.index, guard.output())
                event = item.event
                if isinstance(event, TextDelta):
                    piece = out.feed(event.text)
                    logged.setdefault(item.index, []).append(piece.to_log)
                    if passthrough:
                        yield item
                    elif piece.to_caller:
                        yield ChoiceEvent(item.index, TextDelta(piece.to_caller))
                    continue
                piece = out.flush()
                logged.setdefault(item.index, []).append(piece.to_log)
                if piece.to_caller and not passthrough:
                    yield ChoiceEvent(item.index, TextDelta(piece.to_caller))
                usage += choice_usage(item.index, call.n, event)
                held.append(item)
            entry.status = 200
        except ModelyardError as exc:
            entry.status = exc.http_status
            entry.details["error"] = exc.code or type(exc).__name__
            raise
        except (GeneratorExit, asyncio.CancelledError):
            entry.status = CLIENT_CLOSED
            raise
        except Exception as exc:
            entry.details["error"] = type(exc).__name__
            raise
        finally:
            entry.prompt_tokens = usage.prompt_tokens
            entry.completion_tokens = usage.completion_tokens
            used = self._charged(call, entry, usage.total_tokens)
            entry.latency_ms = int((time.monotonic() - started) * 1000)
            entry.response = _join(logged)
            if entry.status is None:
                entry.status = 500
            if entry.status != 200:
                # Not awaited in a thread: a closing generator may not be resumed later.
                self.limiter.settle(reservation, used)
                self._complete_now(entry)

        def settle_and_record() -> None:
            self.limiter.settle(reservation, used)
            self.audit.append(entry)

        # Off the event loop (the limiter may call Redis; the append waits for the disk).
        # Fail closed: no record, no end of the answer.
        await asyncio.to_thread(settle_and_record)
        for item in held:
            yield item

    def _charged(self, call: GenerationCall, entry: AuditEntry, tokens: int) -> int:
        """The tokens a request counts against budgets: a response-cache hit counts
        ``cache_hit_token_rate`` of them (rounded up); the record says what the cache did."""
        note = call.cache
        if note is None or note.status == "off":
            return tokens
        entry.details["cache"] = note.status
        if note.status != "hit":
            return tokens
        charged = math.ceil(tokens * self.settings.cache_hit_token_rate)
        entry.details["charged_tokens"] = charged
        return charged

    # -- embeddings ---------------------------------------------------------------------

    async def embedding_layer(
        self, call: EmbeddingCall, inner: EmbeddingHandler
    ) -> EmbeddingResult:
        started = time.monotonic()
        names = [call.served.version.name, call.served.version.ref]
        entry = self._entry(call, "embeddings", None)
        try:
            access = await self._admit(call.principal, "embeddings", names)
            entry.team = access.team
            guard = PiiGuard(access.pii_policy(self.settings.pii_default_policy), self.analyzer)
            entry.details["pii"] = guard.policy

            def screen_and_reserve() -> tuple[list[str], list[str], Reservation]:
                # Off the event loop, as for generations.
                model, logged = guard.inbound(call.inputs)
                estimate = sum(estimate_tokens(t) for t in model)
                return model, logged, self._reserve(access, estimate)

            model_inputs, logged_inputs, reservation = await asyncio.to_thread(screen_and_reserve)
        except Exception as exc:  # recorded, then raised
            await self._refused(entry, exc)
            raise
        entry.text_mode = guard.text_mode
        await self._accept(entry, "\n\n".join(logged_inputs), reservation)
        try:
            result = await inner(replace(call, inputs=tuple(model_inputs)))
        except Exception as exc:  # recorded, then raised
            self.limiter.settle(reservation, 0)
            entry.latency_ms = int((time.monotonic() - started) * 1000)
            await self._refused(entry, exc)
            raise
        except BaseException:  # cancelled: the client went away
            self.limiter.settle(reservation, 0)
            entry.status, entry.latency_ms = CLIENT_CLOSED, int((time.monotonic() - started) * 1000)
            self._complete_now(entry)
            raise
        self.limiter.settle(reservation, result.prompt_tokens)
        entry.status, entry.prompt_tokens = 200, result.prompt_tokens
        entry.latency_ms = int((time.monotonic() - started) * 1000)
        await self._record(entry)
        return result


def _params(call: GenerationCall) -> dict[str, Any]:
    p = call.params
    return {
        "max_tokens": call.max_tokens,
        "n": call.n,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "seed": p.seed,
        "stream": bool(call.body.get("stream")),
    }


def _join(logged: dict[int, list[str]]) -> str:
    if len(logged) <= 1:
        return "".join(next(iter(logged.values()), []))
    return "\n\n".join(f"[{i}] " + "".join(parts) for i, parts in sorted(logged.items()))
