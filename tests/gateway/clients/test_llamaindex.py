"""docs/clients.md's LlamaIndex blocks, run against a real gateway; and the pitfalls the page
names: the default chunk size, ``OpenAILikeEmbedding``'s default key, and the ``OpenAI`` class
that refuses model names it does not know."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.embeddings.openai_like import OpenAILikeEmbedding
from llama_index.llms.openai import OpenAI as LlamaIndexOpenAI

from tests.gateway.clients.doc import (
    DOC,
    LLAMAINDEX,
    Run,
    assert_printed_as_shown,
    cosine,
    run_python,
)
from tests.gateway.conftest import Server

Closer = Callable[[Any], Any]


@pytest.fixture(scope="module")
def doc(server: Server) -> Iterator[Run]:
    run = run_python(LLAMAINDEX, server)
    yield run
    run.close()


def test_printed_output_is_what_the_page_shows(doc: Run) -> None:
    assert_printed_as_shown(LLAMAINDEX, doc)


def test_chat_answers_the_question(doc: Run) -> None:
    assert "The capital of France is Paris." in doc.stdout
    assert doc["llm"].metadata.is_chat_model


def test_streaming_yields_deltas_that_add_up_to_the_answer(doc: Run) -> None:
    deltas = doc["deltas"]
    assert len([d for d in deltas if d]) > 3
    assert "Paris" in "".join(deltas)


def test_base_model_completes(doc: Run) -> None:
    assert doc["base"].complete("1, 2, 3, 4,").text.startswith(" 5, 6")


def test_embeddings_have_384_dimensions_and_rank_related_text_closer(doc: Run) -> None:
    embed = doc["embed_model"]
    cat, kitten, taxes = embed.get_text_embedding_batch(
        ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Taxes are due in April."]
    )
    assert len(cat) == 384
    assert cosine(cat, kitten) > cosine(cat, taxes) + 0.3


def test_retrieval_finds_the_right_note(doc: Run) -> None:
    notes = doc["notes"]
    assert doc["response"].source_nodes[0].text == notes[0].text
    assert str(doc["response"]).strip()
    retriever = doc["index"].as_retriever(similarity_top_k=1)
    assert retriever.retrieve("Where can visitors leave their car?")[0].text == notes[1].text
    assert retriever.retrieve("When must expenses be filed?")[0].text == notes[2].text


def test_default_chunks_are_too_long_for_minilm_and_200_fit(
    server: Server, close_after: Closer
) -> None:
    page = [Document(text=DOC.read_text())]
    embed = close_after(
        OpenAILikeEmbedding(
            model_name="minilm", api_base=server.v1, api_key=server.user_key, max_retries=0
        )
    )
    with pytest.raises(openai.BadRequestError) as refused:
        VectorStoreIndex.from_documents(page, embed_model=embed)
    assert refused.value.code == "context_length_exceeded"
    splitter = SentenceSplitter(chunk_size=200, chunk_overlap=20)
    index = VectorStoreIndex.from_documents(page, embed_model=embed, transformations=[splitter])
    assert len(index.docstore.docs) > 10


def test_embedding_without_api_key_is_refused(server: Server, close_after: Closer) -> None:
    keyless = close_after(
        OpenAILikeEmbedding(model_name="minilm", api_base=server.v1, max_retries=0)
    )
    with pytest.raises(openai.AuthenticationError):
        keyless.get_text_embedding("a cat")


def test_llamaindex_openai_class_refuses_the_model_name(
    server: Server, close_after: Closer
) -> None:
    llm = close_after(
        LlamaIndexOpenAI(model="smollm2-135m", api_base=server.v1, api_key=server.user_key)
    )
    with pytest.raises(ValueError, match="Unknown model 'smollm2-135m'"):
        llm.complete("Hi")


def test_without_llm_llamaindex_falls_back_to_openai(
    doc: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="Could not load OpenAI model"):
        doc["index"].as_query_engine(similarity_top_k=1)
