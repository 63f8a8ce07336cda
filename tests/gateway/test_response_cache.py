"""The response cache in process: a real gateway app (SQLite, real audit log, real limiter)
with the fake engine, an injected clock for TTLs. Redis is the real one at 127.0.0.1:6379."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modelyard.audit.erasure import erase_subject
from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.advisories import Advisories
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.config import Settings
from modelyard.engines.fake import FakeEngine, FakeEngines
from modelyard.gateway.app import create_app
from modelyard.gateway.state import Gateway
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.limits import Reservation
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies, Teams
from modelyard.intake.importer import import_path
from tests.factories import write_tiny_gguf

REPLY = "the fake engine answers mail bob@example.com please"
HEADER = "X-Modelyard-Cache"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Env:
    gw: Gateway
    client: TestClient
    engine: FakeEngine
    keys: dict[str, str]
    now: list[float]
    settled: list[int]

    def chat(
        self, key: str, text: str = "hello", headers: dict[str, str] | None = None, **extra: Any
    ) -> Any:
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
            "max_tokens": 20,
            **extra,
        }
        return self.client.post(
            "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {self.keys[key]}", **(headers or {})},
        )

    def requests(self) -> list[dict[str, Any]]:
        return list(iter_records(self.gw.db, Filter(kind="request")))


def _key(gw: Gateway, name: str, team: str | None, scope: Scope) -> str:
    return create_scoped_key(
        gw.db,
        gw.settings,
        name,
        admin=False,
        team=team,
        scope=scope,
        created_by="tests",
        actor="tests",
    ).plaintext


@pytest.fixture(params=["memory", "redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    settings = Settings(home=tmp_path / "home", probe_timeout_s=20)
    if request.param == "redis":
        settings = Settings(
            home=tmp_path / "home",
            probe_timeout_s=20,
            redis_url=REDIS_URL,
            cache_redis_prefix=f"modelyard-test:{uuid.uuid4().hex}:",
        )
    settings.ensure_home()
    real = Gateway.open(settings)
    engine = FakeEngine(reply=REPLY)
    version = import_path(write_tiny_gguf(tmp_path / "tiny.gguf"), real.registry, settings)
    place(real.registry, version.ref, Stage.PRODUCTION, actor="tests", reason="tests")
    gw = replace(real, workers=FakeEngines(lambda v: engine))
    teams = Teams(gw.db, settings)
    teams.create("red", Scope(cache=True), actor="tests")
    teams.create("blue", Scope(cache=True), actor="tests")
    keys = {
        "alice": _key(gw, "alice", "red", Scope()),
        "amy": _key(gw, "amy", "red", Scope()),
        "bob": _key(gw, "bob", "blue", Scope()),
        "solo": _key(gw, "solo", None, Scope(cache=True, cache_ttl_s=60)),
        "plain": _key(gw, "plain", None, Scope()),
        "optout": _key(gw, "optout", "red", Scope(cache=False)),
    }
    now = [1_000_000.0]
    assert gw.response_cache is not None and gw.governance is not None
    gw.response_cache.clock = lambda: now[0]
    settled: list[int] = []
    limiter = gw.governance.limiter
    settle = limiter.settle

    def spy(reservation: Reservation, actual: int) -> None:
        settled.append(actual)
        settle(reservation, actual)

    limiter.settle = spy  # type: ignore[method-assign]
    with TestClient(create_app(settings, gateway=gw)) as client:
        yield Env(gw, client, engine, keys, now, settled)
    real.db.close()


def test_a_hit_replays_without_the_engine_audited_and_charged(env: Env) -> None:
    first = env.chat("alice")
    assert first.status_code == 200, first.text
    assert first.headers[HEADER] == "miss"
    second = env.chat("alice")
    assert second.headers[HEADER] == "hit"
    assert len(env.engine.prompts) == 1
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    records = env.requests()
    assert [r["details"]["cache"] for r in records[-2:]] == ["miss", "hit"]
    total = first.json()["usage"]["total_tokens"]
    rate = env.gw.settings.cache_hit_token_rate
    assert records[-1]["details"]["charged_tokens"] == math.ceil(total * rate)
    assert env.settled[-2:] == [total, math.ceil(total * rate)]
    # a key of the same team shares the entry; a key that opted out does not use it
    assert env.chat("amy").headers[HEADER] == "hit"
    opted_out = env.chat("optout")
    assert HEADER not in opted_out.headers
    assert "cache" not in env.requests()[-1]["details"]


def test_off_by_default(env: Env) -> None:
    for _ in range(2):
        reply = env.chat("plain")
        assert reply.status_code == 200 and HEADER not in reply.headers
    assert len(env.engine.prompts) == 2


def test_two_tenants_never_share_an_entry(env: Env) -> None:
    assert env.chat("alice").headers[HEADER] == "miss"
    assert env.chat("bob").headers[HEADER] == "miss"
    assert env.chat("solo").headers[HEADER] == "miss"
    assert len(env.engine.prompts) == 3
    assert env.chat("bob").headers[HEADER] == "hit"


SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}


@pytest.mark.parametrize(
    "change",
    [
        {"text": "hello!"},
        {"temperature": 0.5, "seed": 7},
        {"seed": 8},
        {"top_p": 0.5},
        {"stop": ["zzz"]},
        {"logprobs": True},
        {"logprobs": True, "top_logprobs": 2},
        {"response_format": SCHEMA},
        {"response_format": {"type": "json_object"}},
        {"logit_bias": {"5": 1}},
        {"n": 2},
        {"max_tokens": 19},
        {"frequency_penalty": 0.5},
    ],
    ids=lambda change: ",".join(change),
)
def test_any_output_affecting_change_misses(env: Env, change: dict[str, Any]) -> None:
    base: dict[str, Any] = {"seed": 7}
    first = env.chat("alice", **base)
    assert first.headers[HEADER] == "miss", first.text
    changed = {**base, **change}
    text = changed.pop("text", "hello")
    reply = env.chat("alice", text, **changed)
    if reply.status_code == 400:  # a parameter this gateway refuses: never reaches the cache
        return
    assert reply.status_code == 200, reply.text
    assert reply.headers[HEADER] == "miss"
    assert env.chat("alice", text, **changed).headers[HEADER] == "hit"


def test_the_completions_endpoint_has_its_own_entries(env: Env) -> None:
    env.chat("alice")
    body = {"model": "tiny", "prompt": "hello", "temperature": 0, "max_tokens": 20}
    auth = {"Authorization": f"Bearer {env.keys['alice']}"}
    first = env.client.post("/v1/completions", json=body, headers=auth)
    assert first.status_code == 200 and first.headers[HEADER] == "miss"
    again = env.client.post("/v1/completions", json=body, headers=auth)
    assert again.headers[HEADER] == "hit"
    assert again.json()["choices"] == first.json()["choices"]


def test_non_deterministic_requests_are_never_stored(env: Env) -> None:
    for _ in range(2):
        reply = env.chat("alice", temperature=0.7)
        assert reply.headers[HEADER] == "bypass"
    assert len(env.engine.prompts) == 2
    assert env.requests()[-1]["details"]["cache"] == "bypass"


def test_the_request_header_bypasses(env: Env) -> None:
    assert env.chat("alice", headers={HEADER: "no-store"}).headers[HEADER] == "bypass"
    assert env.chat("alice").headers[HEADER] == "miss"  # nothing was stored
    assert env.chat("alice", headers={HEADER: "no-cache"}).headers[HEADER] == "bypass"
    assert len(env.engine.prompts) == 3  # no-cache skipped the lookup
    assert env.chat("alice").headers[HEADER] == "hit"
    refused = env.chat("alice", headers={HEADER: "please"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == HEADER


def test_a_catalog_change_invalidates(env: Env) -> None:
    assert env.chat("alice").headers[HEADER] == "miss"
    assert env.chat("alice").headers[HEADER] == "hit"
    Advisories(env.gw.registry).add("tiny@1", "ADV-1", severity="low", action="warn", actor="tests")
    assert env.chat("alice").headers[HEADER] == "miss"
    assert env.chat("alice").headers[HEADER] == "hit"
    place(env.gw.registry, "tiny@1", Stage.DEPRECATED, actor="tests", reason="tests")
    after = env.chat("alice")
    assert after.status_code == 200, after.text
    assert after.headers[HEADER] == "miss"


def test_entries_expire_on_their_ttl(env: Env) -> None:
    assert env.chat("solo").headers[HEADER] == "miss"
    env.now[0] += 59
    assert env.chat("solo").headers[HEADER] == "hit"
    env.now[0] += 2  # past the key's 60 s
    assert env.chat("solo").headers[HEADER] == "miss"


def test_the_output_pii_filter_runs_on_a_hit(env: Env) -> None:
    first = env.chat("solo")
    assert "bob@example.com" in first.json()["choices"][0]["message"]["content"]
    KeyPolicies(env.gw.db, env.gw.settings).set(
        "solo", None, Scope(cache=True, cache_ttl_s=60, pii="redact"), actor="tests"
    )
    hit = env.chat("solo")
    assert hit.headers[HEADER] == "hit"
    assert "bob@example.com" not in hit.json()["choices"][0]["message"]["content"]
    assert env.requests()[-1]["details"]["pii"] == "redact"


def test_streaming_hits_replay_as_sse(env: Env) -> None:
    first = env.chat("alice", stream=True, stream_options={"include_usage": True})
    assert first.headers[HEADER] == "miss"
    hit = env.chat("alice", stream=True, stream_options={"include_usage": True})
    assert hit.headers[HEADER] == "hit"
    assert len(env.engine.prompts) == 1
    assert _sse_text(hit.text) == _sse_text(first.text) == REPLY
    assert hit.text.endswith("data: [DONE]\n\n")
    # a streamed answer serves a non-streamed request too (framing is not in the key)
    assert env.chat("alice").headers[HEADER] == "hit"


def _sse_text(body: str) -> str:
    text = ""
    for line in body.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
    return text


def test_an_erased_subjects_entries_are_dropped(env: Env) -> None:
    assert env.chat("alice", user="carol").headers[HEADER] == "miss"
    assert env.chat("alice", user="dave").headers[HEADER] == "hit"
    assert env.gw.governance is not None
    erase_subject(env.gw.governance.audit, "carol", actor="tests")
    assert env.chat("alice", user="dave").headers[HEADER] == "miss"
    assert env.chat("alice", user="carol").headers[HEADER] == "hit"  # dave's entry now


def test_the_setting_key_first_then_team() -> None:
    from modelyard.errors import InvalidInput
    from modelyard.governance.scopes import Access, parse_cache

    assert parse_cache("on") == (True, None)
    assert parse_cache("off") == (False, None)
    assert parse_cache("10m") == (True, 600)
    assert parse_cache(None) == (None, None)
    with pytest.raises(InvalidInput):
        parse_cache("soon")
    team_on = Scope(cache=True, cache_ttl_s=120)
    assert Access("k", "t", team_scope=team_on).cache_ttl_s(3600) == 120
    assert Access("k", "t", key_scope=Scope(cache=False), team_scope=team_on).cache_ttl_s(9) is None
    assert Access("k", None, team_scope=team_on).cache_ttl_s(9) is None  # no team: not its
    assert Access("k", key_scope=Scope(cache=True)).cache_ttl_s(9) == 9
    assert Access("k").cache_ttl_s(9) is None
    assert Access("k", "t").tenant == "team:t" and Access("k").tenant == "key:k"
    stored = Scope(cache=True, cache_ttl_s=5)
    assert Scope.from_json(stored.to_json()) == stored
    assert "cache" not in Scope().to_json()
