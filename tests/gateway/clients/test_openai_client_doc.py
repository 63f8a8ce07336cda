"""docs/clients.md's setup, curl, openai-client and environment-variable blocks, run against a
real gateway with the official ``openai`` client; and a check that every block on the page is
run by a test in this folder."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.gateway.clients.doc import (
    CURL,
    DOC_BASE_URL,
    ENVIRONMENT,
    OPENAI,
    SECTIONS,
    SETUP,
    Run,
    assert_printed_as_shown,
    blocks,
    cosine,
    run_python,
    shell,
)
from tests.gateway.conftest import Server


def test_every_block_of_the_page_is_run() -> None:
    found = blocks()
    assert {b.section for b in found} == set(SECTIONS)
    assert {b.language for b in found} == {"python", "bash"}
    assert [b.language for b in blocks(SETUP)] == ["python"]
    assert [b.language for b in blocks(CURL)] == ["bash"]
    assert [b.language for b in blocks(ENVIRONMENT)] == ["bash", "python"]


@pytest.fixture(scope="module")
def doc(server: Server) -> Iterator[Run]:
    run = run_python(OPENAI, server)
    yield run
    run.close()


def test_printed_output_is_what_the_page_shows(doc: Run) -> None:
    assert_printed_as_shown(OPENAI, doc)


def test_chat_answers_the_question(doc: Run) -> None:
    reply = doc["reply"]
    assert "Paris" in reply.choices[0].message.content
    assert reply.model == "smollm2-135m@1"
    assert reply.choices[0].finish_reason == "stop"
    assert "The capital of France is Paris." in doc.stdout


def test_streaming_yields_the_same_answer_in_chunks(doc: Run) -> None:
    chunks = doc["chunks"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices]) > 3
    assert text == doc["reply"].choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == doc["reply"].usage.completion_tokens


def test_completion_continues_the_base_model_prompt(doc: Run) -> None:
    completion = doc["completion"]
    assert completion.model == "gemma3-270m@1"
    assert completion.choices[0].text.startswith(" 5, 6")
    assert completion.usage.completion_tokens == 6


def test_embeddings_have_384_dimensions_and_rank_related_text_closer(doc: Run) -> None:
    vectors = doc["vectors"]
    assert [len(v) for v in vectors] == [384, 384, 384]
    related, unrelated = cosine(vectors[0], vectors[1]), cosine(vectors[0], vectors[2])
    assert related > unrelated + 0.3
    assert doc["cosine"](vectors[0], vectors[1]) == pytest.approx(related)
    assert doc["result"].model == "minilm@1"


def test_json_schema_answer_parses(doc: Run) -> None:
    content = doc["structured"].choices[0].message.content
    assert json.loads(content)["city"] == "Paris"
    parsed = doc["parsed"].choices[0].message.parsed
    assert isinstance(parsed, doc["Capital"])
    assert parsed.city == "Paris"


def test_errors_carry_the_gateways_status_code_and_param(doc: Run) -> None:
    assert "404 model_not_found model\n" in doc.stdout
    assert "400 context_length_exceeded max_tokens\n" in doc.stdout


def test_retry_settings(doc: Run, server: Server) -> None:
    assert doc["patient"].max_retries == 5
    assert doc["once"].max_retries == 0
    assert doc.stdout.endswith("minilm\n")


def test_client_errors_are_not_retried(server: Server) -> None:
    """What the page says of retries: a 4xx other than 408/409/429 reaches the caller at once."""
    sent: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: sent.append(r.url.path)]}) as http:
        client = openai.OpenAI(base_url=server.v1, api_key=server.user_key, http_client=http)
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")
    assert client.max_retries == 2
    assert sent == ["/v1/models/no-such-model"]


def test_curl_lists_models_and_streams_the_answer(server: Server) -> None:
    (block,) = blocks(CURL, "bash")
    out = shell(block, server).stdout
    models, end = json.JSONDecoder().raw_decode(out)
    stream = out[end:]
    assert {"smollm2-135m", "gemma3-270m", "minilm"} <= {m["id"] for m in models["data"]}
    events = [line for line in stream.splitlines() if line]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "Paris" in text


def test_environment_variables_configure_all_three_clients(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports, _ = blocks(ENVIRONMENT)
    for name in [n for n in os.environ if n.startswith("OPENAI_")]:
        monkeypatch.delenv(name)
    assert DOC_BASE_URL in exports.code
    printed = shell(
        exports,
        server,
        f"{sys.executable} -c 'import json, os; "
        'print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("OPENAI_")}))\'',
    ).stdout
    variables = json.loads(printed)
    assert variables == {
        "OPENAI_BASE_URL": server.v1,
        "OPENAI_API_BASE": server.v1,
        "OPENAI_API_KEY": server.user_key,
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    run = run_python(ENVIRONMENT, None, setup=False)
    try:
        assert_printed_as_shown(ENVIRONMENT, run)
        assert run["listed"].id == "smollm2-135m"
        assert "Paris" in run["langchain_answer"].content
        assert "Paris" in run["llamaindex_answer"].message.content
    finally:
        run.close()
