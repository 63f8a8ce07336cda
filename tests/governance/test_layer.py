"""The governance layer with a scripted engine: scopes, limits, PII, audit, fail closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from modelyard.audit.query import Filter, iter_records
from modelyard.audit.verify import verify
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.serving import ServedModel
from modelyard.config import Settings
from modelyard.engines.base import Finish, SamplingParams, TextDelta
from modelyard.errors import Forbidden, RateLimited, Unavailable
from modelyard.gateway.governance_layer import Governance
from modelyard.gateway.pipeline import (
    ChoiceEvent,
    EmbeddingCall,
    EmbeddingResult,
    GenerationCall,
)
from modelyard.governance.keys import Principal
from modelyard.governance.pii.policy import PiiBlocked
from modelyard.governance.scopes import Limits, Scope
from modelyard.governance.teams import Teams
from modelyard.store.database import Database

VERSION = ModelVersion(
    "tiny", 1, "d" * 64, "gguf", 1, {}, "import", None, {}, "/x", "test", datetime.now(UTC)
)


@pytest.fixture
def governance(sqlite_settings: Settings) -> Iterator[Governance]:
    db = Database(sqlite_settings.resolved_database_url)
    gov = Governance(db, sqlite_settings)
    yield gov
    gov.close()
    db.close()


def _call(
    prompt: str, key: str = "alice", model: str = "tiny", user: str | None = None
) -> GenerationCall:
    return GenerationCall(
        endpoint="chat",
        request_id="req-1",
        principal=Principal(key, "id" + key, False),
        served=ServedModel(VERSION, model),
        prompts=(prompt,),
        params=SamplingParams(max_tokens=8),
        max_tokens=8,
        user=user,
        body={"model": model, "stream": False},
    )


def _engine(answer: list[str], seen: list[str]) -> object:
    async def inner(call: GenerationCall) -> AsyncIterator[ChoiceEvent]:
        seen.extend(call.prompts)
        for piece in answer:
            yield ChoiceEvent(0, TextDelta(piece))
        yield ChoiceEvent(0, Finish("stop", 7, len(answer)))

    return inner


def _run(gov: Governance, call: GenerationCall, answer: list[str], seen: list[str]) -> str:
    async def go() -> str:
        text = ""
        async for item in gov.generation_layer(call, _engine(answer, seen)):  # type: ignore[arg-type]
            if isinstance(item.event, TextDelta):
                text += item.event.text
        return text

    return asyncio.run(go())


def test_redact_policy_end_to_end(governance: Governance) -> None:
    Teams(governance.policies.db, governance.settings).create(
        "clinic", Scope(pii="redact"), actor="tests"
    )
    governance.policies.set("alice", "clinic", Scope(), actor="tests")
    seen: list[str] = []
    answer = ["Dear <PERS", "ON_1>, we wrote to <EMA", "IL_1>."]
    text = _run(governance, _call("I am Anna Schmidt, anna@example.org"), answer, seen)
    assert seen == ["I am <PERSON_1>, <EMAIL_1>"]
    assert text == "Dear Anna Schmidt, we wrote to anna@example.org."
    records = list(iter_records(governance.policies.db, Filter()))
    assert [r["details"]["event"] for r in records[:2]] == ["team.create", "key.policy.set"]
    accepted, record = records[2:]
    assert accepted["kind"] == "request.accepted" and accepted["status"] is None
    assert accepted["prompt"] == "I am <PERSON_1>, <EMAIL_1>" and accepted["response"] is None
    assert (accepted["prompt_tokens"], accepted["completion_tokens"]) == (0, 0)
    assert record["kind"] == "request" and record["details"]["accepted_seq"] == accepted["seq"]
    assert record["response"] == "Dear <PERSON_1>, we wrote to <EMAIL_1>."
    assert (record["status"], record["team"], record["text_mode"]) == (200, "clinic", "redacted")
    assert (record["prompt_tokens"], record["completion_tokens"]) == (7, 3)
    assert accepted["actor"] == record["actor"] == "alice"  # opened from the sealed pseudonym


def test_refusals_are_recorded(governance: Governance) -> None:
    governance.policies.set(
        "alice",
        None,
        Scope(models=("other",), pii="block", limits=Limits(requests_per_minute=1)),
        actor="tests",
    )
    with pytest.raises(Forbidden, match="may not use model 'tiny'"):
        _run(governance, _call("hello"), ["x"], [])
    governance.policies.set(
        "alice", None, Scope(pii="block", limits=Limits(requests_per_minute=1)), actor="tests"
    )
    with pytest.raises(PiiBlocked, match=r"\(EMAIL\)"):
        _run(governance, _call("mail bob@example.com"), ["x"], [])
    assert _run(governance, _call("hello"), ["hi"], []) == "hi"
    with pytest.raises(RateLimited):
        _run(governance, _call("hello"), ["hi"], [])
    statuses = [r["status"] for r in iter_records(governance.policies.db, Filter(kind="request"))]
    assert statuses == [403, 400, 200, 429]
    assert len(list(iter_records(governance.policies.db, Filter(kind="request.accepted")))) == 1
    assert verify(governance.policies.db, governance.settings).ok


def test_fail_closed_when_the_audit_log_cannot_be_written(governance: Governance) -> None:
    db = governance.policies.db
    with db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_head RENAME TO audit_head_away"))
    delivered: list[object] = []

    async def go() -> None:
        async for item in governance.generation_layer(_call("hi"), _engine(["a", "b"], [])):  # type: ignore[arg-type]
            delivered.append(item.event)

    with pytest.raises(Unavailable, match="audit log cannot be written"):
        asyncio.run(go())
    assert delivered == []  # the accepted record comes first: the engine never ran
    with db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_head_away RENAME TO audit_head"))


def test_the_request_user_is_the_data_subject(governance: Governance) -> None:
    from modelyard.audit.erasure import erase_subject

    _run(governance, _call("note for patient seven", user="patient-7"), ["ok"], [])
    _run(governance, _call("note for the key owner"), ["ok"], [])
    erasure = erase_subject(governance.audit, "patient-7", actor="dpo")
    assert erasure.records == {"request.accepted": [1], "request": [2]}
    records = list(iter_records(governance.policies.db, Filter(kind="request.accepted")))
    assert [r["prompt"] for r in records] == ["[erased]", "note for the key owner"]
    assert verify(governance.policies.db, governance.settings).ok


def _failing_engine(exc: BaseException, sent: list[str]) -> object:
    async def inner(call: GenerationCall) -> AsyncIterator[ChoiceEvent]:
        sent.append("called")
        yield ChoiceEvent(0, TextDelta("partial"))
        raise exc

    return inner


def test_engine_failures_mid_answer_are_completed_with_their_status(
    governance: Governance,
) -> None:
    async def go(exc: BaseException) -> None:
        async for _ in governance.generation_layer(_call("hi"), _failing_engine(exc, [])):  # type: ignore[arg-type]
            pass

    with pytest.raises(Unavailable):
        asyncio.run(go(Unavailable("the engine worker exited")))
    with pytest.raises(UnicodeEncodeError):
        asyncio.run(go(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")))
    records = list(iter_records(governance.policies.db, Filter()))
    kinds = [(r["kind"], r["status"], r["details"].get("error")) for r in records]
    assert kinds == [
        ("request.accepted", None, None),
        ("request", 503, "Unavailable"),
        ("request.accepted", None, None),
        ("request", 500, "UnicodeEncodeError"),
    ]
    assert records[1]["response"] == "partial"
    assert verify(governance.policies.db, governance.settings).ok


def test_a_closed_stream_is_completed_as_499(governance: Governance) -> None:
    async def go() -> None:
        stream = governance.generation_layer(_call("hi"), _engine(["a", "b", "c"], []))  # type: ignore[arg-type]
        await stream.__anext__()
        await stream.aclose()  # what the server does when the client goes away

    asyncio.run(go())
    accepted, record = iter_records(governance.policies.db, Filter())
    assert (record["status"], record["details"]["accepted_seq"]) == (499, accepted["seq"])
    assert record["response"] == "a"


def _embed_call(text: str) -> EmbeddingCall:
    return EmbeddingCall(
        request_id="emb-1",
        principal=Principal("alice", "idalice", False),
        served=ServedModel(VERSION, "tiny"),
        inputs=(text,),
    )


def test_embeddings_are_accepted_before_the_engine_and_completed_after(
    governance: Governance,
) -> None:
    calls: list[tuple[str, ...]] = []

    async def inner(call: EmbeddingCall) -> EmbeddingResult:
        calls.append(call.inputs)
        return EmbeddingResult([[0.5]], 3)

    asyncio.run(governance.embedding_layer(_embed_call("embed me"), inner))
    accepted, done = iter_records(governance.policies.db, Filter())
    assert (accepted["kind"], accepted["prompt"], accepted["prompt_tokens"]) == (
        "request.accepted",
        "embed me",
        0,
    )
    assert (done["kind"], done["status"], done["prompt_tokens"]) == ("request", 200, 3)
    assert done["details"]["accepted_seq"] == accepted["seq"]
    db = governance.policies.db
    with db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_head RENAME TO audit_head_away"))
    try:
        with pytest.raises(Unavailable, match="audit log cannot be written"):
            asyncio.run(governance.embedding_layer(_embed_call("again"), inner))
    finally:
        with db.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE audit_head_away RENAME TO audit_head"))
    assert calls == [("embed me",)]  # fail closed: the engine never saw the second request
