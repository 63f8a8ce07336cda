"""Keys and the served set on a real server: pilot keys see approved versions, scoped keys
see only their models, everyone else sees production only."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.gateway.app import create_app
from modelyard.governance.key_admin import create_scoped_key
from modelyard.governance.scopes import Scope
from tests.harness import serve_in_thread
from tests.lifecycle.helpers import add_version


@pytest.fixture
def server(fast_registry: Registry, sqlite_settings: Settings) -> Iterator[str]:
    add_version(fast_registry, "prod")
    add_version(fast_registry, "pilot-only")
    place(fast_registry, "prod@1", Stage.PRODUCTION, actor="ops", reason="test")
    place(fast_registry, "pilot-only@1", Stage.APPROVED, actor="ops", reason="test")
    fast_registry.set_alias("chat", "prod@1", actor="tests")
    app = create_app(sqlite_settings)
    with serve_in_thread(app) as base:
        yield f"{base}/v1"


def _key(registry: Registry, name: str, scope: Scope) -> dict[str, str]:
    scoped = create_scoped_key(
        registry.db,
        registry.settings,
        name,
        admin=False,
        team=None,
        scope=scope,
        created_by="tests",
        actor="tests",
    )
    return {"Authorization": f"Bearer {scoped.plaintext}"}


def test_pilot_scope_and_model_scope(server: str, fast_registry: Registry) -> None:
    plain = _key(fast_registry, "plain", Scope())
    pilot = _key(fast_registry, "piloter", Scope(pilot=True))
    narrow = _key(fast_registry, "narrow", Scope(models=("chat",)))
    with httpx.Client(timeout=30) as http:

        def listed(headers: dict[str, str]) -> set[str]:
            response = http.get(f"{server}/models", headers=headers)
            assert response.status_code == 200
            return {entry["id"] for entry in response.json()["data"]}

        assert listed(plain) == {"prod", "chat"}
        assert listed(pilot) == {"prod", "chat", "pilot-only"}
        assert listed(narrow) == {"chat"}

        refused = http.get(f"{server}/models/pilot-only", headers=plain)
        assert refused.status_code in (403, 404)
        assert "pilot" in refused.json()["error"]["message"]
        assert http.get(f"{server}/models/pilot-only", headers=pilot).status_code == 200
        outside = http.get(f"{server}/models/prod", headers=narrow)
        assert outside.status_code == 403
        assert "may not use model 'prod'" in outside.json()["error"]["message"]
