"""The gateway's streaming path with the ``redact`` and ``block`` policies: an engine that
writes PII a few characters at a time, and no server-sent event carries part of it.

This drives the real app (auth, governance layer, SSE encoding) in process over HTTP with
a scripted engine, so that the answer and its chunking are exactly known; the end-to-end
run with the real model and a real ``modelyard serve`` is in test_gateway_governance.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.config import Settings
from modelyard.engines.base import Event, Finish, Prompt, SamplingParams, TextDelta, prompt_text
from modelyard.engines.fake import FakeEngine, FakeEngines
from modelyard.gateway.app import create_app
from modelyard.gateway.state import Gateway
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.scopes import Scope
from modelyard.intake.importer import import_path
from tests.factories import write_tiny_gguf

LONG_EMAIL = (
    "oluwaseun.quillfeather.procurement@accounts-payable-subsidiary-seven-seven-one.example.com"
)
IBAN = "DE89 3704 0044 0532 0130 00"
ANSWER = f"Yes. Write to {LONG_EMAIL} and transfer into {IBAN} today."
REDACTED = "Yes. Write to <EMAIL_1> and transfer into <IBAN_1> today."


class TrickleEngine(FakeEngine):
    """Writes its reply three characters per event (models emit sub-word tokens)."""

    def complete(self, prompt: Prompt, params: SamplingParams) -> Iterator[Event]:
        self.prompts.append(prompt_text(prompt))
        for i in range(0, len(self.reply), 3):
            yield TextDelta(self.reply[i : i + 3])
        yield Finish("stop", self.count_tokens(prompt), len(self.reply) // 3)


@pytest.fixture
def app(sqlite_settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, Gateway]]:
    real = Gateway.open(sqlite_settings)
    version = import_path(write_tiny_gguf(tmp_path / "tiny.gguf"), real.registry, sqlite_settings)
    place(real.registry, version.ref, Stage.PRODUCTION, actor="tests", reason="tests")
    gw = replace(real, workers=FakeEngines(lambda _version: TrickleEngine(reply=ANSWER)))
    try:
        with TestClient(create_app(sqlite_settings, gateway=gw)) as client:
            yield client, gw
    finally:
        real.db.close()


def _key(gw: Gateway, name: str, pii: str) -> str:
    made = create_scoped_key(
        gw.db,
        gw.settings,
        name,
        admin=False,
        team=None,
        scope=Scope(pii=pii),
        created_by="tests",
        actor="tests",
    )
    return made.plaintext


def _deltas(body: str) -> list[str]:
    pieces: list[str] = []
    for line in body.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                pieces.append(choice.get("text") or choice.get("delta", {}).get("content") or "")
    return pieces


def _stream(client: TestClient, key: str, route: str, payload: dict[str, Any]) -> list[str]:
    response = client.post(
        f"/v1/{route}",
        json={"model": "tiny", "stream": True, "max_tokens": 200, **payload},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return _deltas(response.text)


@pytest.mark.parametrize("policy", ["redact", "block"])
def test_no_event_carries_part_of_an_invented_email(
    app: tuple[TestClient, Gateway], policy: str
) -> None:
    client, gw = app
    key = _key(gw, f"streamer-{policy}", policy)
    for route, payload in [
        ("completions", {"prompt": "Where do I send invoices?"}),
        ("chat/completions", {"messages": [{"role": "user", "content": "Where to pay?"}]}),
    ]:
        pieces = _stream(client, key, route, payload)
        assert len(pieces) > 5  # really streamed in several events
        assert "".join(pieces) == REDACTED
        for piece in pieces:
            assert _trigrams_of_values(piece) == [], piece


def _trigrams_of_values(text: str) -> list[str]:
    return [
        v[i : i + 3] for v in (LONG_EMAIL, IBAN) for i in range(len(v) - 2) if v[i : i + 3] in text
    ]


def test_the_check_is_literal() -> None:
    # The words around the values share no 3-character piece with them, so any such piece
    # in an event can only be a leak.
    assert _trigrams_of_values(REDACTED) == []
