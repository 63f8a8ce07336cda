"""A real ``modelyard serve`` on the real default model: moving an alias under load fails no
request, the next requests answer from the new target, and the audit log has the switch;
then retirement (410) and a blocking advisory (503) take effect on the next request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL

import openai
import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.advisories import Advisories
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import Lifecycle, place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.governance.keys import KeyStore
from modelyard.governance.policy import Policy
from modelyard.intake.default_model import import_default
from modelyard.intake.importer import import_path
from modelyard.store.blobs import open_blob_store
from modelyard.store.database import Database
from tests.harness import serving_gateway

pytestmark = pytest.mark.slow


@dataclass
class Answer:
    started: float
    model: str


@pytest.fixture
def home(tmp_path: Path, default_gguf: Path) -> Iterator[tuple[Settings, Registry, str]]:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    registry = Registry(db, open_blob_store(settings), settings)
    import_default(registry, settings)
    second = import_path(default_gguf, registry, settings, name="gemma-b")  # same bytes
    place(registry, second.ref, Stage.PRODUCTION, actor="tests", reason="second target")
    Aliases(registry, settings).set("chat", "gemma3-270m@1", actor="tests")
    _, key = KeyStore(db, settings).create("switcher", created_by="tests", actor="tests")
    yield settings, registry, key
    db.close()


def end_of_life(client: openai.OpenAI, registry: Registry, settings: Settings) -> None:
    """On the same server: retired → 410 naming the replacement; a blocking advisory → 503
    naming it, from the very next request."""
    lifecycle = Lifecycle(registry, settings, Policy())
    lifecycle.promote(
        "gemma3-270m@1", "retired", actor="ops", reason="replaced", replacement="chat"
    )
    with pytest.raises(openai.APIStatusError) as gone:
        client.completions.create(model="gemma3-270m@1", prompt="Hi", max_tokens=1)
    assert gone.value.status_code == 410
    assert "gemma3-270m@1 is retired" in gone.value.message and "'chat'" in gone.value.message
    Advisories(registry, settings).add(
        "gemma-b@1", "CVE-2026-4242", severity="critical", action="block", actor="sec"
    )
    with pytest.raises(openai.APIStatusError) as blocked:
        client.completions.create(model="chat", prompt="Hi", max_tokens=1)
    assert blocked.value.status_code == 503
    assert "CVE-2026-4242" in blocked.value.message


def test_alias_switch_under_load_fails_no_request(home: tuple[Settings, Registry, str]) -> None:
    settings, registry, key = home
    env = {"MODELYARD_N_THREADS": "1"}
    with serving_gateway(settings.home, settings.home / "serve.log", env, stdout=DEVNULL) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
        answers: list[Answer] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    reply = client.completions.create(
                        model="chat", prompt="Hello", max_tokens=1, temperature=0
                    )
                except BaseException as exc:  # noqa: BLE001 - every failure is collected
                    errors.append(exc)
                    return
                answers.append(Answer(started, reply.model))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        while len(answers) < 8 and not errors:
            time.sleep(0.05)
        Aliases(registry, settings).set("chat", "gemma-b@1", actor="ops", reason="switch")
        switched = time.monotonic()
        while len([a for a in answers if a.started > switched]) < 8 and not errors:
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join()
        end_of_life(client, registry, settings)
        client.close()
    assert errors == []
    before = {a.model for a in answers if a.started < switched}
    after = {a.model for a in answers if a.started > switched}
    assert "gemma3-270m@1" in before
    assert after == {"gemma-b@1"}
    events = [
        r for r in iter_records(registry.db, Filter(kind="event")) if r["target"] == "alias:chat"
    ]
    assert [e["details"]["after"]["target"] for e in events] == ["gemma3-270m@1", "gemma-b@1"]
    assert events[-1]["actor"] == "ops"
    # The audit log shows the switch point: before the alias event only the old target
    # answered; the new target's answers all come after it.
    switch = events[-1]["seq"]
    served = [
        (r["seq"], r["target"])
        for r in iter_records(registry.db, Filter(kind="request"))
        if r["status"] == 200
    ]
    assert len(served) >= len(answers)
    assert {target for seq, target in served if seq < switch} == {"gemma3-270m@1"}
    assert min(seq for seq, target in served if target == "gemma-b@1") > switch
