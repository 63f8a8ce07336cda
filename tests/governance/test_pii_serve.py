"""A real ``modelyard serve`` with the real default model: an address the model invents
while streaming reaches the caller only as a placeholder, never in part.

The prompt makes Gemma 3 270M write an e-mail address of its own (greedy decoding). A key
with PII policy ``off`` shows what the model writes; keys with ``redact`` and ``block``
stream the same answer and must get exactly the non-streaming redaction, event by event
without any piece of the address.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from modelyard.config import Settings
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.pii.analyzer import Analyzer
from modelyard.governance.scopes import Scope
from modelyard.store.database import Database
from tests.governance.serving import Proc, start

pytestmark = pytest.mark.slow

PROMPT = "The support team can be reached by e-mail at"
POLICIES = ("off", "redact", "block")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, dict[str, str]]]:
    home = tmp_path_factory.mktemp("pii-serve") / "home"
    home.mkdir(parents=True)
    settings = Settings(home=home)
    db = Database(settings.resolved_database_url)
    keys = {
        policy: create_scoped_key(
            db,
            settings,
            f"pii-{policy}",
            admin=False,
            team=None,
            scope=Scope(pii=policy),
            created_by="t",
            actor="t",
        ).plaintext
        for policy in POLICIES
    }
    db.close()
    server = start(home, "pii", {})
    try:
        yield server, keys
    finally:
        server.stop()


def _complete(client: openai.OpenAI, *, stream: bool) -> list[str]:
    kwargs = {"model": "gemma3-270m", "prompt": PROMPT, "max_tokens": 16, "temperature": 0}
    if stream:
        chunks = client.completions.create(stream=True, **kwargs)  # type: ignore[call-overload]
        return [chunk.choices[0].text for chunk in chunks if chunk.choices]
    return [client.completions.create(**kwargs).choices[0].text]  # type: ignore[call-overload]


def test_invented_address_never_streams_in_part(served: tuple[Proc, dict[str, str]]) -> None:
    server, keys = served
    clients = {
        p: openai.OpenAI(base_url=server.v1, api_key=k, max_retries=0) for p, k in keys.items()
    }
    try:
        raw = _complete(clients["off"], stream=False)[0]
        addresses = [e.text for e in Analyzer().find(raw) if e.type == "EMAIL"]
        assert addresses, f"the model wrote no address this time: {raw!r}"
        address = addresses[0]
        for policy in ("redact", "block"):
            whole = _complete(clients[policy], stream=False)[0]
            pieces = _complete(clients[policy], stream=True)
            assert "<EMAIL_1>" in whole and address not in whole
            assert "".join(pieces) == whole, policy
            assert not any("@" in piece for piece in pieces), pieces
    finally:
        for client in clients.values():
            client.close()
