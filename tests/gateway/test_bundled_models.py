"""The first ``serve`` of an empty home imports the three bundled models and serves them at
once: completion (gemma3-270m), chat (smollm2-135m, with its own ChatML template) and
embeddings (minilm); its banner says so, and how to add a bigger model."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.gateway.conftest import Server


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=server.v1, api_key=server.user_key, max_retries=0, timeout=120
    ) as client:
        yield client


def test_first_serve_banner_names_the_models_and_how_to_add_one(server: Server) -> None:
    log = server.log.read_text()
    assert "imported 3 bundled models, placed in production:" in log
    assert "gemma3-270m@1   completion (/v1/completions)" in log
    assert "smollm2-135m@1  chat (/v1/chat/completions)" in log
    assert "minilm@1        embeddings (/v1/embeddings)" in log
    assert "modelyard models import ./model.gguf --name NAME" in log
    assert "modelyard models promote NAME@1 --to production" in log


def test_all_three_are_served(client: openai.OpenAI) -> None:
    models = {m.id: (m.model_extra or {})["modelyard"] for m in client.models.list()}
    kinds = {name: models[name]["kind"] for name in ("gemma3-270m", "smollm2-135m", "minilm")}
    assert kinds == {
        "gemma3-270m": "generation",
        "smollm2-135m": "generation",
        "minilm": "embeddings",
    }
    assert {models[name]["stage"] for name in kinds} == {"production"}
    assert client.embeddings.create(model="minilm", input="a cat").data[0].embedding


def test_smollm2_answers_a_chat_greedily(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smollm2-135m",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        max_tokens=24,
        temperature=0,
    )
    assert reply.model == "smollm2-135m@1"
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason == "stop"


def test_smollm2_template_takes_no_tools_so_tools_are_refused(server: Server) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    body = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [tool],
    }
    answer = httpx.post(f"{server.v1}/chat/completions", json=body, headers=server.headers())
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "tools_not_supported" and error["param"] == "tools"
