"""Layers around the engine call: an in-process app with the fake engine (fast unit tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.config import Settings
from modelyard.engines.base import TextDelta, prompt_text
from modelyard.engines.fake import FakeEngine, FakeEngines
from modelyard.errors import Forbidden
from modelyard.gateway.app import create_app
from modelyard.gateway.pipeline import ChoiceEvent, GenerationCall, Handler
from modelyard.gateway.state import Gateway
from modelyard.intake.importer import import_path
from tests.factories import write_tiny_gguf

TOOL_TEMPLATE = (
    "{% for t in tools or [] %}[tool {{ t['function']['name'] }}]{% endfor %}"
    "{% for m in messages %}{{ m['content'] }}{% endfor %}"
)
TOOL_REPLY = '<tool_call>{"name": "get_time", "arguments": {"zone": "UTC"}}</tool_call>'


@pytest.fixture
def gateway(sqlite_settings: Settings, tmp_path: Path) -> Iterator[tuple[Gateway, str]]:
    real = Gateway.open(sqlite_settings)

    def load(version: Any) -> FakeEngine:
        reply = TOOL_REPLY if version.name == "tooly" else "the fake engine answers"
        return FakeEngine(reply=reply)

    version = import_path(write_tiny_gguf(tmp_path / "tiny.gguf"), real.registry, sqlite_settings)
    place(real.registry, version.ref, Stage.PRODUCTION, actor="tests", reason="tests")
    tooly = import_path(
        _gguf_with_template(tmp_path / "tooly.gguf", TOOL_TEMPLATE), real.registry, sqlite_settings
    )
    place(real.registry, tooly.ref, Stage.PRODUCTION, actor="tests", reason="tests")
    gw = replace(real, workers=FakeEngines(load))
    _, key = gw.keys.create("unit", created_by="tests", actor="tests")
    yield gw, key
    real.db.close()


def _gguf_with_template(path: Path, template: str) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_string("general.license", "apache-2.0")
    writer.add_tokenizer_model("llama")
    writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.ones((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _chat(client: TestClient, key: str, text: str, model: str = "tiny", **extra: Any) -> Any:
    return client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
        headers={"Authorization": f"Bearer {key}"},
    )


def test_layers_wrap_the_engine_call(
    gateway: tuple[Gateway, str], sqlite_settings: Settings
) -> None:
    gw, key = gateway
    seen: list[str] = []

    async def refuse_secrets(call: GenerationCall, inner: Handler) -> AsyncIterator[ChoiceEvent]:
        if "secret" in prompt_text(call.prompts[0]):
            raise Forbidden("this layer refuses secrets", code="refused_by_layer")
        async for item in inner(call):
            yield item

    async def shout(call: GenerationCall, inner: Handler) -> AsyncIterator[ChoiceEvent]:
        seen.append(call.endpoint)
        shouted = tuple(prompt_text(p) + "!" for p in call.prompts)
        async for item in inner(replace(call, prompts=shouted)):
            if isinstance(item.event, TextDelta):
                item = ChoiceEvent(item.index, TextDelta(item.event.text.upper()))
            yield item

    gw.generation_layers.extend([refuse_secrets, shout])
    with TestClient(create_app(sqlite_settings, gateway=gw)) as client:
        ok = _chat(client, key, "hello", max_tokens=10)
        assert ok.status_code == 200, ok.text
        assert ok.json()["choices"][0]["message"]["content"] == "THE FAKE ENGINE ANSWERS"
        assert ok.headers["X-Modelyard-Version"] == "tiny@1"
        refused = _chat(client, key, "a secret")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "refused_by_layer"
        stream = _chat(client, key, "hello", max_tokens=2, stream=True)
        assert stream.status_code == 200
        body = stream.text
        assert (
            body.endswith("data: [DONE]\n\n")
            and '"THE"' in body
            and '"finish_reason":"length"' in body
        )
    assert seen == ["chat", "chat"]


def test_tool_calls_where_the_template_takes_tools(
    gateway: tuple[Gateway, str], sqlite_settings: Settings
) -> None:
    gw, key = gateway
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    with TestClient(create_app(sqlite_settings, gateway=gw)) as client:
        reply = _chat(client, key, "time?", model="tooly", tools=tools, max_tokens=40)
        assert reply.status_code == 200, reply.text
        choice = reply.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        [call] = choice["message"]["tool_calls"]
        assert call["function"] == {"name": "get_time", "arguments": '{"zone": "UTC"}'}
        refused = _chat(client, key, "time?", model="tiny", tools=tools)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "tools_not_supported"
