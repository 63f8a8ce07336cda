"""The gateway turns a model name into a version on one pooled connection: the counters, the
key's access and the catalog rows in one transaction, and only the counters when warm."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from modelyard.catalog.aliases import Aliases
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.config import Settings
from modelyard.errors import Forbidden
from modelyard.gateway.generation import serve_model
from modelyard.gateway.state import Gateway
from modelyard.governance.keys import Principal
from modelyard.governance.scopes import Scope
from modelyard.governance.teams import KeyPolicies, Teams
from tests.lifecycle.helpers import add_version

ALICE = Principal(key_name="alice", key_id="0" * 16, admin=False)


@pytest.fixture
def gateway(sqlite_settings: Settings) -> Iterator[Gateway]:
    opened = Gateway.open(sqlite_settings)
    yield opened
    asyncio.run(opened.close())


def test_one_checkout_a_request_and_only_the_counters_when_warm(gateway: Gateway) -> None:
    registry, settings = gateway.registry, gateway.settings
    for _ in range(2):
        add_version(registry, "m")
    place(registry, "m@1", Stage.PRODUCTION, actor="ops", reason="t")
    place(registry, "m@2", Stage.APPROVED, actor="ops", reason="t")
    Aliases(registry, settings).set("chat", "m@2", actor="bob")
    assert asyncio.run(serve_model(gateway, "m", ALICE)).version.ref == "m@1"
    checkouts: list[object] = []
    statements: list[str] = []
    engine = gateway.db.engine
    event.listen(engine, "checkout", lambda *args: checkouts.append(args))
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert asyncio.run(serve_model(gateway, "m", ALICE)).version.ref == "m@1"
    assert len(checkouts) == 1 and len(statements) == 1
    with pytest.raises(Forbidden, match="pilots only"):
        asyncio.run(serve_model(gateway, "chat", ALICE))
    Teams(gateway.db, settings).create("pilots", Scope(pilot=True), actor="ops")
    KeyPolicies(gateway.db, settings).set("alice", "pilots", Scope(), actor="ops")
    assert asyncio.run(serve_model(gateway, "chat", ALICE)).version.ref == "m@2"
    KeyPolicies(gateway.db, settings).delete("alice", actor="ops")
    with pytest.raises(Forbidden, match="pilots only"):
        asyncio.run(serve_model(gateway, "chat", ALICE))
