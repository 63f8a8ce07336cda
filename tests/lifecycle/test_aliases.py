"""Aliases: atomic moves, canary rules, history and rollback, switching under load."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from modelyard.audit.query import Filter, iter_records
from modelyard.catalog.aliases import Aliases
from modelyard.catalog.promotion import Lifecycle
from modelyard.catalog.registry import Registry
from modelyard.catalog.serving import resolve_for_serving
from modelyard.config import Settings
from modelyard.errors import Conflict, InvalidInput, NotFound
from modelyard.governance.policy import Policy
from tests.lifecycle.helpers import add_version


@pytest.fixture
def three(fast_registry: Registry, sqlite_settings: Settings) -> Aliases:
    lc = Lifecycle(fast_registry, sqlite_settings, Policy())
    for n in (1, 2, 3):
        add_version(fast_registry, "m")
        lc.promote(f"m@{n}", "production", actor="bob", reason="go")
    return Aliases(fast_registry, sqlite_settings)


def test_rollback_walks_back_along_history(three: Aliases) -> None:
    three.set("chat", "m@1", actor="bob")
    three.set("chat", "m@2", actor="bob")
    three.set("chat", "m@3", canary="m@1", weight=10, actor="bob", reason="try 3")
    state, events = three.show("chat")
    assert (state.target, state.canary, state.weight) == ("m@3", "m@1", 10)
    assert [e.action for e in events] == ["set", "set", "set"]
    assert events[-1].previous_target == "m@2" and events[-1].reason == "try 3"
    assert three.rollback("chat", actor="bob").target == "m@2"
    assert three.show("chat")[0].canary is None
    assert three.rollback("chat", actor="bob").target == "m@1"
    with pytest.raises(Conflict, match="nothing to roll back to"):
        three.rollback("chat", actor="bob")
    three.set("chat", "m@3", actor="bob")
    assert three.rollback("chat", actor="bob").target == "m@1"


def test_rollback_restores_a_canary_split(three: Aliases) -> None:
    three.set("chat", "m@1", canary="m@2", weight=20, actor="bob")
    three.set("chat", "m@3", actor="bob")
    restored = three.rollback("chat", actor="bob", reason="m@3 misbehaves")
    assert (restored.target, restored.canary, restored.weight) == ("m@1", "m@2", 20)
    assert three.show("chat")[1][-1].reason == "m@3 misbehaves"


def test_alias_rules(three: Aliases, fast_registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="strictly between 0 and 100"):
        three.set("chat", "m@1", canary="m@2", weight=100, actor="bob")
    with pytest.raises(InvalidInput, match="needs a canary version"):
        three.set("chat", "m@1", weight=5, actor="bob")
    with pytest.raises(InvalidInput, match="different version"):
        three.set("chat", "m@1", canary="m@1", weight=5, actor="bob")
    with pytest.raises(Conflict, match="already a model name"):
        three.set("m", "m@1", actor="bob")
    with pytest.raises(NotFound):
        three.rollback("nope", actor="bob")
    three.set("chat", "m@1", canary="m@2", weight=5, actor="bob")
    with pytest.raises(Conflict, match="alias chat"):
        fast_registry.remove("m@2", actor="tests")  # the canary side counts as a use
    three.remove("chat", actor="bob")
    assert three.list() == []
    fast_registry.remove("m@2", actor="tests")


def test_registry_set_alias_drops_canary_and_keeps_history(
    three: Aliases, fast_registry: Registry
) -> None:
    three.set("chat", "m@1", canary="m@2", weight=5, actor="bob")
    assert fast_registry.set_alias("chat", "m@3", actor="tests").target == "m@3"
    assert three.show("chat")[0].canary is None
    assert fast_registry.resolve("chat").ref == "m@3"
    assert three.rollback("chat", actor="bob").canary == "m@2"


def test_switch_under_concurrent_load_fails_no_request(
    three: Aliases, fast_registry: Registry, sqlite_settings: Settings
) -> None:
    """Eight threads resolve 'chat' while it moves m@1 → m@2: every request is answered,
    each by one of the two, and none by m@1 after the switch committed."""
    three.set("chat", "m@1", actor="bob")
    stop = threading.Event()
    switched = threading.Event()
    answers: list[tuple[bool, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            after = switched.is_set()
            try:
                ref = resolve_for_serving(fast_registry, "chat").version.ref
            except BaseException as exc:  # noqa: BLE001 - every failure is collected
                errors.append(exc)
                return
            with lock:
                answers.append((after, ref))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    while len(answers) < 40:
        stop.wait(0.01)
    three.set("chat", "m@2", actor="ops", reason="switch")
    switched.set()
    count = len(answers)
    while len(answers) < count + 40:
        stop.wait(0.01)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Counter(ref for _, ref in answers).keys() == {"m@1", "m@2"}
    assert all(ref == "m@2" for after, ref in answers if after)
    events = [
        r
        for r in iter_records(fast_registry.db, Filter(kind="event"))
        if r["target"] == "alias:chat"
    ]
    assert [e["details"]["after"]["target"] for e in events] == ["m@1", "m@2"]
    assert events[-1]["details"]["before"]["target"] == "m@1" and events[-1]["actor"] == "ops"
