"""Aliases: list, set, canary weight, rollback, and the API's errors on bad input."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from modelyard.catalog.aliases import Aliases
from modelyard.catalog.registry import Registry
from tests.web.conftest import ConsoleClient, audit_events
from tests.web.test_models_pages import add


def registry_with_versions(app: FastAPI) -> Registry:
    registry: Registry = app.state.gateway.registry
    add(registry, "m")
    add(registry, "m")
    return registry


def test_set_an_alias_then_weight_a_canary_then_roll_back(
    console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    registry_with_versions(console_app)
    operator = console_client("operator")
    created = operator.submit(
        "/console/aliases", {"alias": "chat", "target": "m@1", "reason": "first"}
    )
    assert created.status_code == 200 and created.url.path == "/console/aliases/chat"
    assert "chat → m@1." in created.text

    canary = operator.submit(
        "/console/aliases/chat/canary", {"canary": "m@2", "weight": "10", "reason": "try m@2"}
    )
    assert canary.status_code == 200
    assert 'id="alias-canary-now"><a href="/console/models/m/2">m@2</a> at 10%' in canary.text
    listing = operator.get("/console/aliases").text
    assert 'id="alias-chat"' in listing and "10%" in listing

    rolled = operator.submit("/console/aliases/chat/rollback", {"reason": "errors up"})
    assert rolled.status_code == 200 and "Rolled back" in rolled.text
    assert 'id="alias-canary-now">none<' in rolled.text
    history = rolled.text[rolled.text.index('id="alias-history"') :]
    assert "rollback" in history and "errors up" in history
    kinds = [e["details"]["event"] for e in audit_events(console_app, "alias.set")]
    assert kinds == ["alias.set", "alias.set"]
    assert audit_events(console_app, "alias.rollback")[-1]["actor"] == operator.operator


def test_bad_weights_show_the_api_error(
    console_app: FastAPI, console_client: Callable[..., ConsoleClient]
) -> None:
    registry = registry_with_versions(console_app)
    Aliases(registry, registry.settings).set("chat", "m@1", actor="tests")
    operator = console_client("operator")
    words = operator.submit("/console/aliases/chat/canary", {"canary": "m@2", "weight": "lots"})
    assert words.status_code == 400
    assert "weight: Input should be a valid number" in words.text
    assert 'value="lots"' in words.text  # what was typed stays in the form
    too_much = operator.submit("/console/aliases/chat/canary", {"canary": "m@2", "weight": "100"})
    assert too_much.status_code == 400 and "strictly between 0 and 100" in too_much.text
    unknown = operator.submit("/console/aliases", {"alias": "chat", "target": "m@9"})
    assert unknown.status_code == 404 and "m has no version 9" in unknown.text
    nothing = operator.submit("/console/aliases/chat/rollback", {"reason": ""})
    assert nothing.status_code == 409 and "nothing to roll back" in nothing.text


def test_viewers_see_aliases_but_cannot_change_them(
    console_app: FastAPI, viewer_client: ConsoleClient
) -> None:
    registry = registry_with_versions(console_app)
    Aliases(registry, registry.settings).set("chat", "m@1", actor="tests")
    page = viewer_client.get("/console/aliases/chat").text
    assert "m@1" in page and 'id="canary-form"' not in page and 'id="rollback-form"' not in page
    refused = viewer_client.submit("/console/aliases/chat/rollback", {"reason": "x"})
    assert refused.status_code == 403
    assert viewer_client.get("/console/aliases/nope").status_code == 404
