"""docs/clients.md's LangChain blocks, run against a real gateway; and the two ways the default
``OpenAIEmbeddings`` fails offline, which the page gives as the reason for
``check_embedding_ctx_length=False``."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import llama_index.core
import openai
import pytest
import requests
import tiktoken.registry
from langchain_openai import OpenAIEmbeddings

from tests.gateway.clients.doc import LANGCHAIN, Run, assert_printed_as_shown, cosine, run_python
from tests.gateway.conftest import Server

Closer = Callable[[Any], Any]

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _tiktoken_cache(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """tiktoken as in a fresh process whose ``TIKTOKEN_CACHE_DIR`` is ``folder``: it forgets the
    encodings it loaded (another test in this process may have loaded one)."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})


@pytest.fixture(scope="module")
def carried_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiktoken cache folder as the page says to carry one: cl100k_base under the SHA-1 of
    its URL (the copy llama-index-core ships stands in for one fetched on a networked machine)."""
    name = hashlib.sha1(CL100K_URL.encode()).hexdigest()
    shipped = Path(llama_index.core.__file__).parent / "_static" / "tiktoken_cache" / name
    folder = tmp_path_factory.mktemp("tiktoken-cache")
    shutil.copyfile(shipped, folder / name)
    return folder


@pytest.fixture(scope="module")
def doc(server: Server, carried_cache: Path) -> Iterator[Run]:
    with pytest.MonkeyPatch.context() as patch:
        _tiktoken_cache(patch, carried_cache)
        run = run_python(LANGCHAIN, server)
    yield run
    run.close()


def test_printed_output_is_what_the_page_shows(doc: Run) -> None:
    assert_printed_as_shown(LANGCHAIN, doc)


def test_chat_answers_the_question(doc: Run) -> None:
    answer = doc["answer"]
    assert "Paris" in answer.content
    assert answer.response_metadata["model_name"] == "smollm2-135m@1"
    assert answer.usage_metadata["output_tokens"] > 0


def test_streaming_yields_chunks_that_add_up_to_the_answer(doc: Run) -> None:
    pieces, streamed, answer = doc["pieces"], doc["streamed"], doc["answer"]
    assert len([p for p in pieces if p.content]) > 3
    assert streamed.content == answer.content
    assert streamed.usage_metadata["output_tokens"] == answer.usage_metadata["output_tokens"]


def test_structured_output(doc: Run) -> None:
    capital = doc["capital"]
    assert isinstance(capital, doc["Capital"])
    assert capital.city == "Paris"


def test_embeddings_have_384_dimensions_and_rank_related_text_closer(doc: Run) -> None:
    documents, query = doc["doc_vectors"], doc["query_vector"]
    assert [len(v) for v in documents] == [384, 384]
    assert len(query) == 384
    assert cosine(query, documents[0]) > cosine(query, documents[1]) + 0.2


def test_chunk_size_keeps_large_batches_within_the_gateways_limit(
    doc: Run, server: Server, close_after: Closer
) -> None:
    texts = [f"ticket {i}: the printer on floor {i % 7} is jammed" for i in range(300)]
    vectors = doc["embeddings"].embed_documents(texts)
    assert len(vectors) == 300
    assert all(len(v) == 384 for v in vectors)
    unchunked = close_after(
        OpenAIEmbeddings(
            model="minilm",
            base_url=server.v1,
            api_key=server.user_key,
            check_embedding_ctx_length=False,
            max_retries=0,
        )
    )
    assert unchunked.chunk_size == 1000
    with pytest.raises(openai.BadRequestError, match="at most 256 inputs"):
        unchunked.embed_documents(texts)


def test_token_count_uses_the_carried_tiktoken_cache(doc: Run) -> None:
    assert doc.stdout.endswith("\n7\n")


def _default_embeddings(server: Server) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model="minilm", base_url=server.v1, api_key=server.user_key, max_retries=0
    )


def test_default_embeddings_fail_offline_fetching_tiktokens_encoding(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, close_after: Closer
) -> None:
    _tiktoken_cache(monkeypatch, tmp_path)
    with pytest.raises(requests.exceptions.ConnectionError, match="openaipublic"):
        close_after(_default_embeddings(server)).embed_query("a cat")


def test_default_embeddings_send_token_ids_which_the_gateway_refuses(
    server: Server, carried_cache: Path, monkeypatch: pytest.MonkeyPatch, close_after: Closer
) -> None:
    _tiktoken_cache(monkeypatch, carried_cache)
    with pytest.raises(openai.BadRequestError) as refused:
        close_after(_default_embeddings(server)).embed_query("a cat")
    assert refused.value.status_code == 400
    assert str(refused.value.param).startswith("input")
