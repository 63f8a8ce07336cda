"""The remote provider against the stub upstream: messages and prompts out, events in;
failover before the first byte; clean errors after it; credentials never passed on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from modelyard.catalog.records import ModelVersion
from modelyard.engines.base import Event, Finish, SamplingParams, TextDelta, prompt_text
from modelyard.engines.endpoints import EndpointSpec
from modelyard.engines.remote_engine import (
    StreamLost,
    chat_logprobs,
    completion_logprobs,
    request_body,
    scrub,
)
from modelyard.engines.remote_messages import messages_prompt
from modelyard.engines.remote_provider import RemoteOptions, RemoteProvider
from modelyard.engines.replicas import BreakerSettings
from modelyard.engines.url_policy import AllowList, parse_rule
from modelyard.errors import EngineFault, InvalidInput, ModelyardError, Unavailable
from tests.remote_stub import StubConfig, refusing_port, stub_server

SECRET = "sk-upstream-0123456789abcdef"


def endpoint_version(urls: Sequence[str], served: str = "stub-model") -> ModelVersion:
    spec = EndpointSpec(tuple(urls), served, {"model_id": served})
    return ModelVersion(
        name="remote",
        version=1,
        digest=spec.digest(),
        format="endpoint",
        size_bytes=0,
        metadata={"endpoint": {"urls": list(urls), "served_model": served}},
        origin="remote",
        parent=None,
        lineage={},
        source_path="endpoint",
        created_by="tests",
        created_at=datetime.now(UTC),
    )


def provider(secret: str | None = SECRET, **options: Any) -> RemoteProvider:
    async def rules() -> AllowList:
        return AllowList((parse_rule("127.0.0.1"),))

    async def credential(version: ModelVersion) -> str | None:
        return secret

    defaults: dict[str, Any] = {"connect_timeout_s": 2.0, "read_timeout_s": 5.0}
    return RemoteProvider(
        RemoteOptions(**{**defaults, **options}), rules=rules, credentials=credential
    )


def chat(text: str = "Hi there") -> Any:
    return messages_prompt(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        tools=None,
        model="remote@1",
    ).parts


async def generate(
    remote: RemoteProvider, version: ModelVersion, prompt: Any, **params: Any
) -> list[Event]:
    events: list[Event] = []
    async with remote.lease(version) as engine:
        async for event in engine.stream(prompt, SamplingParams(**params)):
            events.append(event)
    return events


def run(remote: RemoteProvider, coro: Any) -> Any:
    async def main() -> Any:
        try:
            return await coro
        finally:
            await remote.close()

    return asyncio.run(main())


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_chat_sends_messages_upstream_and_streams_back_with_usage() -> None:
    with stub_server(StubConfig(key=SECRET)) as stub:
        version = endpoint_version([stub.url])
        remote = provider()
        events = run(remote, generate(remote, version, chat(), max_tokens=3, seed=5, stop=("x",)))
    assert text_of(events) == "Hello from the"
    assert events[-1] == Finish("length", 7, 3)
    (sent,) = stub.completions()
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]
    assert sent.body["model"] == "stub-model" and sent.body["max_tokens"] == 3
    assert sent.body["seed"] == 5 and sent.body["stop"] == ["x"] and sent.body["stream"] is True
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert "top_k" not in sent.body


def test_a_raw_prompt_goes_to_completions_and_usage_is_estimated_when_missing() -> None:
    with stub_server(StubConfig(usage=False)) as stub:
        version = endpoint_version([stub.url])
        remote = provider(secret=None)
        events = run(remote, generate(remote, version, "Once upon a time", max_tokens=-1))
    assert text_of(events) == "Hello from the stub upstream"
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "stop"
    assert finish.completion_tokens == 5 and finish.prompt_tokens >= 1
    (sent,) = stub.completions()
    assert sent.path == "/v1/completions" and sent.body["prompt"] == "Once upon a time"
    assert "max_tokens" not in sent.body and "Authorization" not in sent.headers


def test_messages_prompts_read_as_a_transcript() -> None:
    assert prompt_text(chat("Hello")) == "system: Be brief.\n\nuser: Hello"


def test_a_5xx_before_the_first_byte_fails_over_to_the_next_replica() -> None:
    with (
        stub_server(StubConfig(fail_status=500)) as broken,
        stub_server(StubConfig()) as healthy,
    ):
        version = endpoint_version([broken.url, healthy.url])
        remote = provider()

        async def twice() -> list[list[Event]]:
            return [await generate(remote, version, chat(), max_tokens=2) for _ in range(4)]

        results = run(remote, twice())
    assert all(text_of(events) == "Hello from" for events in results)
    assert len(healthy.completions()) == 4
    assert 1 <= len(broken.completions()) <= 3  # tried until its breaker opened (3 failures)


def test_a_refused_connection_fails_over_and_all_replicas_down_is_a_503() -> None:
    with refusing_port() as port, stub_server() as healthy:
        dead = f"http://127.0.0.1:{port}"
        remote = provider(breaker=BreakerSettings(failures=1, cooldown_s=60))
        version = endpoint_version([dead, healthy.url])
        events = run(remote, generate(remote, version, chat(), max_tokens=1))
        assert text_of(events) == "Hello"
        only_dead = endpoint_version([dead])
        remote = provider()
        with pytest.raises(Unavailable) as raised:
            run(remote, generate(remote, only_dead, chat()))
    assert raised.value.code == "model_unavailable" and raised.value.http_status == 503
    assert "could not connect" in raised.value.message


def test_dying_mid_stream_is_a_clean_error_and_not_retried() -> None:
    with (
        stub_server(StubConfig(die_after=2)) as dying,
        stub_server(StubConfig()) as healthy,
    ):
        remote = provider()
        version = endpoint_version([dying.url, healthy.url])
        seen: list[Event] = []

        async def consume() -> None:
            async with remote.lease(version) as engine:
                # ask until the dying one is chosen (least outstanding, ties take turns)
                for _ in range(2):
                    async for event in engine.stream(chat(), SamplingParams(max_tokens=5)):
                        seen.append(event)

        with pytest.raises(StreamLost) as raised:
            run(remote, consume())
    assert raised.value.http_status == 503 and raised.value.code == "upstream_stopped"
    assert len(dying.completions()) == 1


def test_a_slow_upstream_times_out_cleanly() -> None:
    with stub_server(StubConfig(delay_s=1.0)) as slow:
        remote = provider(read_timeout_s=0.2)
        with pytest.raises(Unavailable) as raised:
            run(remote, generate(remote, endpoint_version([slow.url]), chat()))
    assert raised.value.code == "upstream_timeout"


@pytest.mark.parametrize(
    ("status", "body", "kind", "needle"),
    [
        (400, {"error": {"message": "bad temperature"}}, InvalidInput, "bad temperature"),
        (400, {"detail": "context length exceeded"}, InvalidInput, "context"),
        (422, {"object": "error", "message": "unknown field"}, InvalidInput, "unknown field"),
        (401, {"error": "nope"}, EngineFault, "credentials"),
        (404, b"<html>not here</html>", InvalidInput, "not here"),
        (503, {"error": {"message": "loading"}}, Unavailable, "loading"),
    ],
)
def test_upstream_error_shapes_become_our_errors(
    status: int, body: Any, kind: type[ModelyardError], needle: str
) -> None:
    with stub_server(StubConfig(fail_status=status, fail_body=body)) as stub:
        remote = provider()
        with pytest.raises(kind) as raised:
            run(remote, generate(remote, endpoint_version([stub.url]), chat()))
    assert needle in raised.value.message
    assert SECRET not in raised.value.message


def test_an_error_echoing_the_authorization_header_is_scrubbed() -> None:
    with stub_server(StubConfig(fail_status=400, echo_headers=True)) as stub:
        remote = provider()
        with pytest.raises(InvalidInput) as raised:
            run(remote, generate(remote, endpoint_version([stub.url]), chat()))
    message = raised.value.message
    assert "headers" in message and SECRET not in message and "[redacted]" in message
    assert scrub(f"Authorization: Bearer {SECRET}", None) == "Authorization: [redacted]"
    assert SECRET not in scrub(f'{{"authorization": "Bearer {SECRET}"}}', None)


def test_status_shows_each_replica() -> None:
    with stub_server() as one, refusing_port() as port:
        dead = f"http://127.0.0.1:{port}"
        remote = provider()
        version = endpoint_version([one.url, dead])

        async def look() -> list[dict[str, Any]]:
            await remote.prewarm([version])
            return remote.status()

        (status,) = run(remote, look())
    assert status["model"] == "remote@1" and status["kind"] == "remote"
    assert status["state"] == "ready"
    by_url = {r["url"]: r for r in status["replicas"]}
    assert by_url[one.url]["healthy"] is True and by_url[dead]["healthy"] is False
    assert "ConnectError" in by_url[dead]["last_error"]


def test_sampling_and_logprobs_map_to_openai_fields() -> None:
    params = SamplingParams(
        max_tokens=4,
        temperature=0.2,
        top_p=0.9,
        logprobs=2,
        logit_bias=((13, -100.0),),
        json_schema={"type": "object"},
    )
    path, body = request_body(chat(), params, "served")
    assert path == "/v1/chat/completions" and body["top_logprobs"] == 2
    assert body["logit_bias"] == {"13": -100.0}
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    path, body = request_body("text", params, "served")
    assert path == "/v1/completions" and body["logprobs"] == 2
    entry = {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}
    (parsed,) = chat_logprobs({"content": [entry]})
    assert parsed.token == "Hi" and parsed.token_bytes == b"Hi" and parsed.logprob == -0.5
    legacy = {"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": [{"a": -1.0, "b": -2.0}]}
    (token,) = completion_logprobs(legacy)
    assert token.logprob == -1.0 and [t.token for t in token.top] == ["a", "b"]


def test_an_upstream_redirect_is_an_error_and_its_target_is_never_asked() -> None:
    with stub_server() as target, stub_server(StubConfig(redirect_to=target.url)) as moved:
        remote = provider()
        with pytest.raises(EngineFault, match="redirect"):
            run(remote, generate(remote, endpoint_version([moved.url]), chat()))
    assert len(moved.completions()) == 1 and target.completions() == []
