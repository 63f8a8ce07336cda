"""Token usage: each prompt counted once, each completion counted; the audit record agrees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.records import ModelVersion
from modelyard.catalog.serving import ServedModel
from modelyard.config import Settings
from modelyard.engines.base import Finish, SamplingParams, TextDelta
from modelyard.gateway.governance_layer import Governance
from modelyard.gateway.pipeline import ChoiceEvent, GenerationCall
from modelyard.gateway.usage import TokenUsage, choice_usage
from modelyard.governance.keys import Principal
from modelyard.store.database import Database

# two prompts (5 and 9 tokens), two choices each; choices finish out of order
FINISHES = [
    (1, Finish("stop", 5, 4)),
    (2, Finish("length", 9, 8)),
    (0, Finish("stop", 5, 2)),
    (3, Finish("stop", 9, 1)),
]


def test_each_prompt_once_each_completion_always() -> None:
    usage = TokenUsage()
    for index, finish in FINISHES:
        usage += choice_usage(index, 2, finish)
    assert usage == TokenUsage(prompt_tokens=5 + 9, completion_tokens=4 + 8 + 2 + 1)
    assert usage.to_json() == {"prompt_tokens": 14, "completion_tokens": 15, "total_tokens": 29}
    assert TokenUsage(6).embeddings_json() == {"prompt_tokens": 6, "total_tokens": 6}
    assert choice_usage(0, 1, Finish("stop", 3, 2)) == TokenUsage(3, 2)


def test_the_audit_record_counts_as_the_response_does(sqlite_settings: Settings) -> None:
    db = Database(sqlite_settings.resolved_database_url)
    governance = Governance(db, sqlite_settings)
    version = ModelVersion(
        "tiny", 1, "d" * 64, "gguf", 1, {}, "import", None, {}, "/x", "test", datetime.now(UTC)
    )
    call = GenerationCall(
        endpoint="completions",
        request_id="req-1",
        principal=Principal("alice", "idalice", False),
        served=ServedModel(version, "tiny"),
        prompts=("first prompt", "second prompt"),
        params=SamplingParams(max_tokens=8),
        max_tokens=8,
        n=2,
        body={"model": "tiny", "stream": False},
    )

    async def engine(_call: GenerationCall) -> AsyncIterator[ChoiceEvent]:
        for index, finish in FINISHES:
            yield ChoiceEvent(index, TextDelta("x"))
            yield ChoiceEvent(index, finish)

    async def run() -> TokenUsage:
        usage = TokenUsage()
        async for item in governance.generation_layer(call, engine):
            if isinstance(item.event, Finish):
                usage += choice_usage(item.index, call.n, item.event)
        return usage

    try:
        answered = asyncio.run(run())
        (record,) = [r for r in iter_records(db, Filter()) if r["kind"] == "request"]
    finally:
        governance.close()
        db.close()
    assert answered == TokenUsage(14, 15)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (14, 15)
