"""The official ``openai`` client against a real ``modelyard serve`` with the real default model."""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Iterator

import numpy as np
import openai
import pytest

from tests.gateway.conftest import Server


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=server.v1, api_key=server.user_key, max_retries=0, timeout=120
    ) as client:
        yield client


def test_first_serve_imported_default_and_printed_admin_key_once(server: Server) -> None:
    assert server.first_stdout.count("my-") == 1
    log = server.log.read_text()
    assert server.admin_key not in log
    assert server.user_key not in log


def test_models_list_shows_models_aliases_and_metadata(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert {"gemma3-270m", "minilm", "chat"} <= set(models)
    extra = models["gemma3-270m"].model_extra or {}
    meta = extra["modelyard"]
    assert meta["version"] == "gemma3-270m@1"
    assert meta["stage"] == "production"
    assert meta["context_length"] == 32768
    assert len(meta["digest"]) == 64
    assert (models["chat"].model_extra or {})["modelyard"]["version"] == "gemma3-270m@1"
    assert client.models.retrieve("chat").id == "chat"


def test_chat_non_streaming(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=6,
        temperature=0,
        seed=1,
    )
    assert reply.object == "chat.completion"
    assert reply.model == "gemma3-270m@1"
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("length", "stop")
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 6
    assert reply.usage.prompt_tokens > 5


def test_chat_streaming_matches_non_streaming(client: openai.OpenAI) -> None:
    args = dict(
        model="gemma3-270m",
        messages=[{"role": "user", "content": "Count to five."}],
        max_tokens=8,
        temperature=0,
        seed=3,
    )
    whole = client.chat.completions.create(**args)  # type: ignore[call-overload]
    stream = client.chat.completions.create(
        **args, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_completions_streaming_and_not(client: openai.OpenAI) -> None:
    whole = client.completions.create(
        model="gemma3-270m", prompt="1, 2, 3,", max_tokens=5, temperature=0, seed=0
    )
    assert whole.choices[0].text.startswith(" 4")
    assert whole.usage is not None and whole.usage.completion_tokens == 5
    parts = client.completions.create(
        model="gemma3-270m", prompt="1, 2, 3,", max_tokens=5, temperature=0, seed=0, stream=True
    )
    assert "".join(p.choices[0].text for p in parts) == whole.choices[0].text
    echoed = client.completions.create(
        model="gemma3-270m", prompt="1, 2, 3,", max_tokens=5, temperature=0, seed=0, echo=True
    )
    assert echoed.choices[0].text == "1, 2, 3," + whole.choices[0].text


def test_completions_n_and_logprobs(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="gemma3-270m", prompt="Hello", max_tokens=3, temperature=0.9, seed=5, n=2, logprobs=2
    )
    assert [c.index for c in reply.choices] == [0, 1]
    for choice in reply.choices:
        assert choice.logprobs is not None
        assert len(choice.logprobs.tokens or []) == 3
        assert all(lp <= 0 for lp in choice.logprobs.token_logprobs or [])
        assert all(len(top) == 2 for top in choice.logprobs.top_logprobs or [])


def test_chat_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gemma3-270m",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=3,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == 3
    for token in content:
        assert len(token.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert math.isclose(token.logprob, token.top_logprobs[0].logprob, abs_tol=1e-6)
    assert "".join(t.token for t in content) == reply.choices[0].message.content


def test_json_schema_output_parses(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "enum": ["yes", "no"]},
            "sure": {"type": "boolean"},
        },
        "required": ["answer", "sure"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="gemma3-270m",
        messages=[{"role": "user", "content": "Is Paris in France? Answer in JSON."}],
        max_tokens=40,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema},
        },
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert data["answer"] in ("yes", "no") and isinstance(data["sure"], bool)


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="minilm", input=["a cat", "a kitten", "tax law"])
    vectors = np.array([d.embedding for d in floats.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert floats.usage.prompt_tokens > 3
    encoded = client.embeddings.create(model="minilm", input="a cat", encoding_format="base64")
    raw = encoded.data[0].embedding
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4") if isinstance(raw, str) else raw
    assert np.allclose(decoded, vectors[0], atol=1e-5)


def test_gguf_embeddings_in_llama_cpp_embedding_mode(client: openai.OpenAI) -> None:
    reply = client.embeddings.create(model="gemma3-270m", input="hello world")
    vector = np.array(reply.data[0].embedding)
    assert vector.shape == (640,)
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-4)


def test_typed_client_exceptions(server: Server, client: openai.OpenAI) -> None:
    message = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=message)  # type: ignore[arg-type]
    assert missing.value.body["param"] == "model"  # type: ignore[index]
    with (
        openai.OpenAI(base_url=server.v1, api_key="my-000000000000-nope", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model="chat", messages=message, n=99)  # type: ignore[arg-type]
    assert too_many.value.body["param"] == "n"  # type: ignore[index]


def test_eight_concurrent_streams_all_complete_and_correct(client: openai.OpenAI) -> None:
    prompts = [f"{i}, {i + 1}, {i + 2}," for i in range(8)]

    def ask(prompt: str, stream: bool) -> str:
        if not stream:
            reply = client.completions.create(
                model="gemma3-270m", prompt=prompt, max_tokens=6, temperature=0, seed=11
            )
            return reply.choices[0].text
        parts = client.completions.create(
            model="gemma3-270m", prompt=prompt, max_tokens=6, temperature=0, seed=11, stream=True
        )
        return "".join(p.choices[0].text for p in parts)

    expected = [ask(p, stream=False) for p in prompts]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            results[index] = ask(prompts[index], stream=True)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    assert [results[i] for i in range(8)] == expected
