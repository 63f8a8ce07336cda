"""The tuned version served by a real ``modelyard serve``, called with the official client."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.governance.keys import KeyStore
from tests.harness import serving_gateway
from tests.tune.tuned import TunedModel


@pytest.fixture(scope="module")
def served(tuned_model: TunedModel) -> Iterator[tuple[str, str]]:
    registry = tuned_model.registry
    ref = tuned_model.outcome.version.ref
    place(registry, ref, Stage.PRODUCTION, actor="tests", reason="tuned model served in tests")
    keys = KeyStore(registry.db, registry.settings)
    _, key = keys.create("tune-tester", created_by="tests", actor="tests")
    home = tuned_model.settings.home
    env = {"MODELYARD_WORKER_CTX_PER_SLOT": "512", "MODELYARD_WORKER_SLOTS": "2"}
    with serving_gateway(home, home.parent / "serve.log", env) as url:
        yield url, key


def test_gateway_serves_the_tuned_version(served: tuple[str, str], tuned_model: TunedModel) -> None:
    url, key = served
    with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120) as client:
        reply = client.chat.completions.create(
            model="ticket-router",
            messages=[{"role": "user", "content": "The VPN keeps dropping, asap."}],
            max_tokens=8,
            temperature=0,
        )
    assert reply.model == tuned_model.outcome.version.ref
    assert reply.choices[0].message.content
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 8
