"""An endpoint version behind a real in-process gateway (uvicorn on port 0) and the official
``openai`` client, the upstream being the stub: the chat reaches the upstream as messages,
PII is redacted before it leaves, usage, budgets and the audit record work as for a local
model, ``/v1/models`` lists it, ``/admin/workers`` shows its replicas, and an upstream error
never carries the upstream's credential back to the caller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.config import Settings
from modelyard.engines.endpoint_registration import EndpointRequest, register_endpoint
from modelyard.engines.endpoint_store import EndpointRules
from modelyard.gateway.app import create_app
from modelyard.gateway.state import Gateway
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.scopes import Limits, Scope
from tests.harness import serve_in_thread
from tests.remote_stub import StubConfig, StubServer, stub_server

pytestmark = pytest.mark.slow  # starts a gateway (uvicorn in a thread)

SECRET = "sk-upstream-fedcba9876543210"


@dataclass
class Site:
    url: str
    gateway: Gateway
    stub: StubServer
    settings: Settings

    def key(self, name: str, scope: Scope | None = None, admin: bool = False) -> str:
        made = create_scoped_key(
            self.gateway.db,
            self.settings,
            name,
            admin=admin,
            team=None,
            scope=scope or Scope(),
            created_by="tests",
            actor="tests",
        )
        return made.plaintext

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def site(sqlite_settings: Settings, tmp_path: Path) -> Iterator[Site]:
    settings = sqlite_settings
    with stub_server(StubConfig(key=SECRET)) as stub:
        gateway = Gateway.open(settings)
        EndpointRules(gateway.db, settings).set("127.0.0.1", "allow", actor="tests")
        version = register_endpoint(
            gateway.registry,
            settings,
            EndpointRequest("remote", (stub.url,), "stub-model", SECRET, "apache-2.0"),
            actor="tests",
        )
        place(gateway.registry, version.ref, Stage.PRODUCTION, actor="tests", reason="tests")
        try:
            with serve_in_thread(create_app(settings, gateway=gateway)) as url:
                yield Site(url, gateway, stub, settings)
        finally:
            gateway.db.close()


def test_chat_reaches_the_upstream_as_messages_and_is_audited(site: Site) -> None:
    client = site.client(site.key("app"))
    answer = client.chat.completions.create(
        model="remote",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        max_tokens=3,
    )
    assert answer.choices[0].message.content == "Hello from the"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.prompt_tokens == 7
    assert answer.usage.completion_tokens == 3
    (sent,) = site.stub.completions()
    assert sent.body["messages"][1] == {"role": "user", "content": "Say hello"}
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    records = [r for r in iter_records(site.gateway.db, Filter()) if r["kind"] == "request"]
    assert records[-1]["status"] == 200 and records[-1]["target"] == "remote@1"
    assert records[-1]["prompt_tokens"] == 7 and records[-1]["completion_tokens"] == 3

    streamed = client.chat.completions.create(
        model="remote",
        messages=[{"role": "user", "content": "again"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(streamed)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the stub upstream"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_pii_is_redacted_before_it_leaves_for_the_upstream(site: Site) -> None:
    client = site.client(site.key("careful", Scope(pii="redact")))
    client.chat.completions.create(
        model="remote",
        messages=[{"role": "user", "content": "Write to jane.doe@example.com please"}],
        max_tokens=2,
    )
    (sent,) = site.stub.completions()
    content = sent.body["messages"][0]["content"]
    assert "jane.doe@example.com" not in content and "<EMAIL_1>" in content
    accepted = [r for r in iter_records(site.gateway.db, Filter()) if r["kind"] != "event"]
    assert all("jane.doe@example.com" not in (r.get("prompt") or "") for r in accepted)


def test_completions_budgets_and_listing(site: Site) -> None:
    key = site.key("small", Scope(limits=Limits(tokens_per_day=60)))
    client = site.client(key)
    done = client.completions.create(model="remote", prompt="Once", max_tokens=2)
    assert done.choices[0].text == "Hello from"
    assert site.stub.completions()[0].path == "/v1/completions"
    with pytest.raises(openai.RateLimitError):
        for _ in range(5):
            client.completions.create(model="remote", prompt="Once " * 40, max_tokens=2)
    listed = {m.id: m for m in client.models.list().data}
    assert "remote" in listed
    extra = listed["remote"].model_extra or {}
    assert extra["modelyard"]["format"] == "endpoint"


def test_admin_workers_show_replicas(site: Site) -> None:
    site.client(site.key("app")).completions.create(model="remote", prompt="x", max_tokens=1)
    admin = site.key("root", admin=True)
    workers = httpx.get(
        f"{site.url}/admin/workers", headers={"Authorization": f"Bearer {admin}"}
    ).json()
    (remote,) = [w for w in workers["data"] if w["model"] == "remote@1"]
    assert remote["state"] == "ready" and remote["kind"] == "remote"
    assert remote["replicas"][0]["url"] == site.stub.url
    assert remote["replicas"][0]["circuit"] == "closed"
    assert "remote endpoints" in workers["engine"]
    assert SECRET not in str(workers)


def test_an_upstream_error_echoing_the_credential_is_not_passed_through(site: Site) -> None:
    site.stub.config.fail_status = 400
    site.stub.config.echo_headers = True
    client = site.client(site.key("app"))
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="remote", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
    body = str(raised.value.body) + raised.value.message
    assert "headers" in body and SECRET not in body
    records = list(iter_records(site.gateway.db, Filter()))
    assert SECRET not in str(records)


# -- tool calls ------------------------------------------------------------------------------

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "send_mail",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
        },
    }
]
MAIL = '{"to": "jane.doe@example.com", "subject": "Lunch"}'


def test_tool_calls_come_back_as_openai_shapes_them(site: Site) -> None:
    site.stub.config.tool_calls = (("send_mail", MAIL),)
    client = site.client(site.key("app"))
    answer = client.chat.completions.create(
        model="remote",
        messages=[{"role": "user", "content": "Mail Jane about lunch"}],
        tools=TOOLS,
        tool_choice="auto",
        parallel_tool_calls=False,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_stub0" and call.type == "function"
    assert call.function.name == "send_mail" and call.function.arguments == MAIL
    (sent,) = site.stub.completions()
    assert sent.body["tools"] == TOOLS and sent.body["tool_choice"] == "auto"
    assert sent.body["parallel_tool_calls"] is False

    # the result goes back: the history's call and the tool's answer reach the upstream
    site.stub.config.tool_calls = ()
    follow = client.chat.completions.create(
        model="remote",
        messages=[
            {"role": "user", "content": "Mail Jane about lunch"},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sent"},
        ],
        tools=TOOLS,
    )
    assert follow.choices[0].message.content == "Hello from the stub upstream"
    history = site.stub.completions()[-1].body["messages"]
    assert history[1]["tool_calls"][0]["function"] == {"name": "send_mail", "arguments": MAIL}
    assert history[1]["content"] is None and history[1]["tool_calls"][0]["id"] == call.id
    assert history[2] == {"role": "tool", "tool_call_id": call.id, "content": "sent"}


def test_streamed_tool_calls_are_deltas_with_index_id_and_arguments(site: Site) -> None:
    site.stub.config.tool_calls = (("send_mail", MAIL), ("send_mail", "{}"))
    site.stub.config.tool_preface = "On it."
    client = site.client(site.key("app"))
    chunks = list(
        client.chat.completions.create(
            model="remote",
            messages=[{"role": "user", "content": "Mail Jane"}],
            tools=TOOLS,
            stream=True,
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "On it."
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert [(t.index, t.id, t.type) for t in calls] == [
        (0, "call_stub0", "function"),
        (1, "call_stub1", "function"),
    ]
    assert [t.function.arguments for t in calls if t.function] == [MAIL, "{}"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_call_arguments_go_through_the_pii_policy_and_the_audit_log(site: Site) -> None:
    site.stub.config.tool_calls = (("send_mail", MAIL),)
    logged = site.client(site.key("logged", Scope(pii="redact-logs")))
    answer = logged.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": "Mail her"}], tools=TOOLS
    )
    (call,) = answer.choices[0].message.tool_calls or []
    assert call.function.arguments == MAIL  # the caller gets the answer as it was
    record = [r for r in iter_records(site.gateway.db, Filter()) if r["kind"] == "request"][-1]
    assert '<tool_call name="send_mail"' in record["response"]
    assert "jane.doe@example.com" not in record["response"] and "<EMAIL_1>" in record["response"]

    blocked = site.client(site.key("strict", Scope(pii="block")))
    answer = blocked.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": "Mail her"}], tools=TOOLS
    )
    (call,) = answer.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments)["to"] == "<EMAIL_1>"  # invented PII: redacted

    # redact: the upstream sees a placeholder, writes it into the call, the caller gets it back
    site.stub.config.tool_calls = (("send_mail", '{"to": "<EMAIL_1>"}'),)
    careful = site.client(site.key("careful", Scope(pii="redact")))
    answer = careful.chat.completions.create(
        model="remote",
        messages=[{"role": "user", "content": "Mail jane.doe@example.com"}],
        tools=TOOLS,
    )
    (call,) = answer.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"to": "jane.doe@example.com"}
    assert "jane.doe" not in str(site.stub.completions()[-1].body)


# -- limits ------------------------------------------------------------------------------------


def test_no_local_context_check_and_the_upstreams_own_400(site: Site) -> None:
    client = site.client(site.key("app"))
    answer = client.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": "hi"}], max_tokens=100_000
    )  # the version records a 512-token context: the upstream decides, not the gateway
    assert answer.choices[0].finish_reason == "stop"
    assert site.stub.completions()[0].body["max_tokens"] == 100_000
    site.stub.config.fail_status = 400
    site.stub.config.fail_body = {
        "object": "error",
        "message": "This model's maximum context length is 512 tokens. However, you requested "
        "100010 tokens (10 in the messages, 100000 in the completion).",
        "type": "BadRequestError",
        "code": 400,
    }
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="remote", messages=[{"role": "user", "content": "hi"}], max_tokens=100_000
        )
    assert raised.value.code == "context_length_exceeded"
    assert "maximum context length is 512" in raised.value.message


def test_requests_in_flight_are_capped_per_endpoint_version(site: Site) -> None:
    site.settings.endpoint_max_in_flight = 1  # one replica: one request at a time
    site.stub.config.chunk_delay_s = 0.05
    client = site.client(site.key("app"))
    running = client.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": "slow"}], stream=True
    )
    first = next(iter(running))  # admitted: its answer has begun
    assert first.choices[0].delta.role == "assistant"
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(
            model="remote", messages=[{"role": "user", "content": "one more"}]
        )
    assert raised.value.code == "queue_full" and "MAX_IN_FLIGHT" in raised.value.message
    retry = str(site.settings.gateway_retry_after_s)
    assert raised.value.response.headers["Retry-After"] == retry
    rest = "".join(c.choices[0].delta.content or "" for c in running if c.choices)
    assert rest == "Hello from the stub upstream"
    again = client.chat.completions.create(
        model="remote", messages=[{"role": "user", "content": "now"}]
    )
    assert again.choices[0].message.content == "Hello from the stub upstream"
